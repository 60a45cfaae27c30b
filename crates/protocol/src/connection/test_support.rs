//! Test helpers shared by the connection modules' tests: settings maps and the connection strings
//! they parse.

use std::collections::HashMap;

use super::{ConnectionError, StorageConnection, DEFAULT_CONNECTION};

pub(super) const FULL_AZURITE: &str = "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;BlobEndpoint=http://127.0.0.1:20000/devstoreaccount1;QueueEndpoint=http://127.0.0.1:20001/devstoreaccount1;TableEndpoint=http://127.0.0.1:20002/devstoreaccount1/;";

pub(super) fn settings(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

pub(super) fn parse(pairs: &[(&str, &str)]) -> Result<StorageConnection, ConnectionError> {
    StorageConnection::from_settings(&settings(pairs), DEFAULT_CONNECTION)
}

pub(super) fn cs(text: &str) -> Result<StorageConnection, ConnectionError> {
    parse(&[("AzureWebJobsStorage", text)])
}
