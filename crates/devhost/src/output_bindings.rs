//! Queue output bindings as the host applies them after a successful invocation: the worker's
//! `Outputs` (and `ReturnValue` for `$return`) turned into messages by the host's conversion
//! rules (a string that is valid base64 is decoded to bytes unless the binding says
//! `"dataType": "binary"`, an array is one message per element, `ReturnValue` goes to a `$return`
//! binding), encoded per `messageEncoding`, written to the binding's queue.

use std::collections::BTreeMap;
use std::sync::Arc;

use azure_core::HttpClient;
use azure_storage_queues::QueueClient;
use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD as BASE64};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use serde_json::Value;
use tokio::sync::OnceCell;

use super::config::{resolve, Binding, ConfigError, FunctionConfig};
use super::invoker::InvocationResult;
use durable_protocol::connection::{ConnectionError, StorageConnection, DEFAULT_CONNECTION};

/// The name under which an output binding receives the function's `ReturnValue`.
pub const RETURN_BINDING: &str = "$return";

/// `Convert.FromBase64String`: canonical padding required, unused trailing bits tolerated.
const DOTNET_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical),
);

/// Why a function's output bindings could not be set up or written.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("function '{function}', output binding '{binding}': {source}")]
    Setting {
        function: String,
        binding: String,
        source: Box<ConfigError>,
    },
    #[error(
        "function '{function}', output binding '{binding}': connection '{connection}': {source}"
    )]
    Connection {
        function: String,
        binding: String,
        connection: String,
        source: Box<ConnectionError>,
    },
    #[error("output binding '{binding}': cannot write to queue '{queue}': {source}")]
    Write {
        binding: String,
        queue: String,
        source: azure_core::Error,
    },
}

/// One `queue` output binding, its queue name and connection resolved.
struct QueueOutput {
    name: String,
    /// `"dataType": "binary"`: string values are written as text, never base64-decoded.
    binary: bool,
    queue: QueueClient,
    /// The host's queue output creates its queue on first use.
    created: OnceCell<()>,
}

/// A function's queue output bindings. The default has none, so applying it does nothing.
#[derive(Default)]
pub struct OutputBindings {
    queues: Vec<QueueOutput>,
    /// `messageEncoding` is `base64` (the default) rather than `none`.
    base64: bool,
}

impl OutputBindings {
    /// The queue outputs of `function`, `%Setting%` resolved in queue names, each on the storage
    /// its `connection` names (the host storage by default). Other output bindings, apart from
    /// `http` (the HTTP front's business), are not simulated: a warning says so.
    pub fn for_function(
        function: &FunctionConfig,
        settings: &BTreeMap<String, String>,
        http: Arc<dyn HttpClient>,
        base64: bool,
    ) -> Result<Self, OutputError> {
        let mut queues = Vec::new();
        for binding in &function.bindings {
            match binding {
                Binding::QueueOut {
                    name,
                    queue_name,
                    connection,
                    data_type,
                } => {
                    let queue_name =
                        resolve(queue_name, settings).map_err(|source| OutputError::Setting {
                            function: function.name.clone(),
                            binding: name.clone(),
                            source: Box::new(source),
                        })?;
                    let connection = connection.as_deref().unwrap_or(DEFAULT_CONNECTION);
                    let connection_error = |source| OutputError::Connection {
                        function: function.name.clone(),
                        binding: name.clone(),
                        connection: connection.to_string(),
                        source: Box::new(source),
                    };
                    let clients = StorageConnection::from_settings(settings, connection)
                        .and_then(|storage| storage.build_clients(http.clone()))
                        .map_err(connection_error)?;
                    queues.push(QueueOutput {
                        name: name.clone(),
                        binary: data_type.as_deref() == Some("binary"),
                        queue: clients.queues.queue_client(queue_name),
                        created: OnceCell::new(),
                    });
                }
                Binding::Other {
                    kind,
                    name,
                    direction,
                } if direction != "in" => {
                    tracing::warn!(
                        "function '{}': the dev host does not simulate '{kind}' output bindings; '{name}' is ignored",
                        function.name
                    );
                }
                _ => {}
            }
        }
        Ok(Self { queues, base64 })
    }

    /// Writes the invocation's queue outputs: `Outputs[name]` (names match case-sensitively) or,
    /// for a `$return` binding, `ReturnValue`. A missing or null value writes nothing. The first
    /// failure stops and is returned, and the host then fails the invocation.
    pub async fn apply(&self, result: &InvocationResult) -> Result<(), OutputError> {
        for output in &self.queues {
            let value = if output.name == RETURN_BINDING {
                Some(&result.return_value)
            } else {
                result.outputs.get(&output.name)
            };
            let Some(value) = value else { continue };
            let messages = queue_messages(value, output.binary);
            if messages.is_empty() {
                continue;
            }
            let failed = |source| OutputError::Write {
                binding: output.name.clone(),
                queue: output.queue.queue_name().to_string(),
                source,
            };
            output
                .created
                .get_or_try_init(|| async { output.queue.create().await.map(|_| ()) })
                .await
                .map_err(failed)?;
            for message in messages {
                output
                    .queue
                    .put_message(encode_message(&message, self.base64))
                    .await
                    .map_err(failed)?;
            }
        }
        Ok(())
    }
}

/// The messages the host writes for one output value, as bytes.
///
/// An array gives one message per element; a string, unless the binding is `binary`, becomes the
/// bytes it decodes to when it happens to be valid base64 (`"test"`, `"abcd1234"`), else its text;
/// objects and other scalars give their JSON text; null gives nothing. Only a whole value is
/// base64-decoded: the host's decoding attempt is a cast of the value to a string, which an array
/// is not, so array elements that are strings are written as their text.
pub fn queue_messages(value: &Value, binary: bool) -> Vec<Vec<u8>> {
    match value {
        Value::Null => Vec::new(),
        Value::String(text) if !binary => {
            vec![dotnet_base64(text).unwrap_or_else(|| text.as_bytes().to_vec())]
        }
        Value::Array(items) => items.iter().filter_map(element_message).collect(),
        other => element_message(other).into_iter().collect(),
    }
}

fn element_message(value: &Value) -> Option<Vec<u8>> {
    match value {
        Value::Null => None,
        Value::String(text) => Some(text.as_bytes().to_vec()),
        other => Some(other.to_string().into_bytes()),
    }
}

/// `Convert.FromBase64String`, which ignores whitespace.
fn dotnet_base64(text: &str) -> Option<Vec<u8>> {
    let compact: String = text
        .chars()
        .filter(|c| !matches!(c, ' ' | '\t' | '\r' | '\n'))
        .collect();
    DOTNET_BASE64.decode(compact).ok()
}

/// The queue text the queue extension stores for a message's bytes: base64 of them with
/// `messageEncoding: base64`, else the bytes read as UTF-8.
pub fn encode_message(bytes: &[u8], base64: bool) -> String {
    if base64 {
        BASE64.encode(bytes)
    } else {
        String::from_utf8_lossy(bytes).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn texts(value: Value, binary: bool) -> Vec<Vec<u8>> {
        queue_messages(&value, binary)
    }

    #[test]
    fn a_string_that_is_valid_base64_is_written_as_the_bytes_it_decodes_to() {
        assert_eq!(texts(json!("test"), false), vec![vec![0xb5, 0xeb, 0x2d]]);
        assert_eq!(
            texts(json!("abcd1234"), false),
            vec![vec![0x69, 0xb7, 0x1d, 0xd7, 0x6d, 0xf8]]
        );
        // Whitespace is ignored and unused trailing bits tolerated, as .NET does.
        assert_eq!(texts(json!("QR==\n"), false), vec![b"A".to_vec()]);
        assert_eq!(texts(json!(""), false), vec![Vec::<u8>::new()]);
    }

    #[test]
    fn other_strings_stay_text() {
        assert_eq!(texts(json!("hello"), false), vec![b"hello".to_vec()]);
        let object_text = r#"{"orderId":7}"#;
        assert_eq!(
            texts(json!(object_text), false),
            vec![object_text.as_bytes().to_vec()]
        );
        // Missing padding is not valid for .NET.
        assert_eq!(texts(json!("QQ"), false), vec![b"QQ".to_vec()]);
        assert_eq!(texts(json!("test"), true), vec![b"test".to_vec()]);
    }

    #[test]
    fn arrays_fan_out_and_other_values_are_json_text() {
        assert_eq!(
            texts(json!(["m1", "test", {"a": 1}, 5, null]), false),
            vec![
                b"m1".to_vec(),
                b"test".to_vec(),
                br#"{"a":1}"#.to_vec(),
                b"5".to_vec()
            ]
        );
        assert_eq!(
            texts(json!({"b": [true]}), false),
            vec![br#"{"b":[true]}"#.to_vec()]
        );
        assert_eq!(texts(json!(42), false), vec![b"42".to_vec()]);
        assert!(texts(json!(null), false).is_empty());
        assert!(texts(json!([]), false).is_empty());
    }

    #[test]
    fn messages_are_encoded_per_message_encoding() {
        assert_eq!(encode_message(b"hello", true), "aGVsbG8=");
        assert_eq!(encode_message(b"hello", false), "hello");
        assert_eq!(encode_message(&[0xb5, 0xeb, 0x2d], true), "test");
    }
}
