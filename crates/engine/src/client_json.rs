//! Decoding what a client sent (an orchestration's input, an external event's data) into the
//! type the code asks for, taking a JSON string that holds JSON as that JSON: Durable Functions'
//! Python client encodes these payloads twice, and its orchestrator SDK decodes them twice.

use serde::de::{DeserializeOwned, IgnoredAny};

/// `text` (JSON; `None` is `null`) as a `T`. Only if that fails and `text` is a JSON string
/// whose content is itself JSON is that content decoded instead, so a `String` (or `Value`)
/// still gets the string as sent. The error names the decode that was attempted last.
pub(crate) fn decode_client_json<T: DeserializeOwned>(text: Option<&str>) -> Result<T, String> {
    let text = text.unwrap_or("null");
    let error = match serde_json::from_str(text) {
        Ok(value) => return Ok(value),
        Err(error) => error,
    };
    match serde_json::from_str::<String>(text) {
        Ok(inner) if serde_json::from_str::<IgnoredAny>(&inner).is_ok() => {
            serde_json::from_str(&inner).map_err(|e| {
                format!("{e} (in the JSON that the string sent holds, decoded once more)")
            })
        }
        _ => Err(error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::{json, Value};

    use super::decode_client_json;

    #[derive(Deserialize, Debug, PartialEq)]
    struct Claim {
        id: String,
        amount: f64,
    }

    #[test]
    fn json_sent_as_a_json_string_decodes_as_that_json() {
        let twice =
            serde_json::to_string(&json!({"id": "C-1", "amount": 2.5}).to_string()).unwrap();
        let claim: Claim = decode_client_json(Some(&twice)).unwrap();
        assert_eq!(
            claim,
            Claim {
                id: "C-1".into(),
                amount: 2.5
            }
        );
        let once: Claim = decode_client_json(Some(r#"{"id":"C-2","amount":1}"#)).unwrap();
        assert_eq!(once.id, "C-2");
        let numbers: Vec<u32> = decode_client_json(Some(r#""[1,2]""#)).unwrap();
        assert_eq!(numbers, [1, 2]);
    }

    #[test]
    fn a_string_the_type_takes_is_left_as_sent() {
        let text: String = decode_client_json(Some(r#""{\"id\":\"C-1\"}""#)).unwrap();
        assert_eq!(text, r#"{"id":"C-1"}"#);
        let value: Value = decode_client_json(Some(r#""[1]""#)).unwrap();
        assert_eq!(value, json!("[1]"));
        let nothing: Option<Claim> = decode_client_json(None).unwrap();
        assert_eq!(nothing, None);
    }

    #[test]
    fn what_fits_neither_way_names_the_decode_that_failed() {
        let plain = decode_client_json::<Claim>(Some(r#""not json""#)).unwrap_err();
        assert!(
            plain.starts_with("invalid type: string \"not json\""),
            "{plain}"
        );
        let inner = decode_client_json::<Claim>(Some(r#""{\"id\":\"C-1\"}""#)).unwrap_err();
        assert!(inner.starts_with("missing field `amount`"), "{inner}");
        assert!(inner.contains("decoded once more"), "{inner}");
        let broken = decode_client_json::<Claim>(Some("{")).unwrap_err();
        assert!(broken.contains("EOF"), "{broken}");
    }
}
