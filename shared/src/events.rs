//! EventBridge in and out. In: `Report Ready` and `Action Items Ready`, delivered straight from a
//! rule or through an SQS queue (records whose body is the EventBridge event). Out: `Page
//! Published`, `Issues Created`, `Publish Failed`, through the [`EventBus`] port.
//!
//! Each event's JSON Schema is generated from these types into `shared/events/` (see the test).

use async_trait::async_trait;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// An EventBridge event as a rule delivers it (only the fields we read).
#[derive(Debug, Clone, Deserialize)]
pub struct Envelope {
    pub id: String,
    #[serde(rename = "detail-type")]
    pub detail_type: String,
    pub source: String,
    pub detail: Value,
}

/// One unit of work from a trigger: its id (for partial batch failures) and the event.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The SQS message id, or the EventBridge event id for a direct delivery.
    pub id: String,
    /// How many times SQS has handed this message out (1 for a direct delivery).
    pub receive_count: u32,
    pub event: Result<Envelope, String>,
}

/// What an invocation carried: an API Gateway request, or event deliveries.
pub enum Trigger {
    Http(Value),
    Sqs(Vec<Delivery>),
    EventBridge(Delivery),
}

#[derive(Deserialize)]
struct SqsRecord {
    #[serde(rename = "messageId")]
    message_id: String,
    body: String,
    #[serde(default)]
    attributes: SqsAttributes,
}

#[derive(Deserialize, Default)]
struct SqsAttributes {
    #[serde(rename = "ApproximateReceiveCount", default)]
    approximate_receive_count: Option<String>,
}

impl Trigger {
    pub fn classify(payload: Value) -> Result<Self, String> {
        if payload.get("requestContext").is_some() {
            return Ok(Self::Http(payload));
        }
        if let Some(records) = payload.get("Records").and_then(Value::as_array) {
            let deliveries = records
                .iter()
                .map(|r| {
                    let record: SqsRecord =
                        serde_json::from_value(r.clone()).map_err(|e| format!("SQS record: {e}"))?;
                    Ok(Delivery {
                        id: record.message_id,
                        receive_count: record
                            .attributes
                            .approximate_receive_count
                            .and_then(|c| c.parse().ok())
                            .unwrap_or(1),
                        event: serde_json::from_str(&record.body)
                            .map_err(|e| format!("message body is not an EventBridge event: {e}")),
                    })
                })
                .collect::<Result<Vec<_>, String>>()?;
            return Ok(Self::Sqs(deliveries));
        }
        if payload.get("detail-type").is_some() {
            let envelope: Result<Envelope, String> =
                serde_json::from_value(payload).map_err(|e| format!("EventBridge event: {e}"));
            let id = envelope.as_ref().map(|e| e.id.clone()).unwrap_or_default();
            return Ok(Self::EventBridge(Delivery { id, receive_count: 1, event: envelope }));
        }
        Err("the invocation is neither an API Gateway request, an SQS batch nor an EventBridge event".into())
    }
}

/// Outgoing events.
#[async_trait]
pub trait EventBus: Send + Sync {
    async fn publish(&self, detail_type: &str, detail: &Value) -> Result<(), String>;
}

pub struct EventBridgeBus {
    client: aws_sdk_eventbridge::Client,
    bus_name: String,
    source: String,
}

impl EventBridgeBus {
    pub fn new(client: aws_sdk_eventbridge::Client, bus_name: impl Into<String>, source: impl Into<String>) -> Self {
        Self { client, bus_name: bus_name.into(), source: source.into() }
    }
}

#[async_trait]
impl EventBus for EventBridgeBus {
    async fn publish(&self, detail_type: &str, detail: &Value) -> Result<(), String> {
        let entry = PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus_name)
            .source(&self.source)
            .detail_type(detail_type)
            .detail(detail.to_string())
            .build();
        let out = self.client.put_events().entries(entry).send().await.map_err(|e| format!("PutEvents failed: {e}"))?;
        if out.failed_entry_count > 0 {
            let reason = out.entries().first().and_then(|e| e.error_message()).unwrap_or("unknown").to_owned();
            return Err(format!("PutEvents refused the event: {reason}"));
        }
        Ok(())
    }
}

/// `Publish Failed`: a job that will not complete, or will be retried (`retryable`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PublishFailed {
    pub tenant_id: String,
    pub idempotency_key: String,
    /// `page` or `issues`.
    pub job: String,
    /// Whether delivering the same event again may succeed (the error code's `retried`).
    pub retryable: bool,
    /// The error code, as the HTTP API would answer it.
    pub code: crate::error::ErrorCode,
    /// What went wrong, for a person.
    pub reason: String,
}

/// JSON Schemas (2020-12) of every event in and out, generated from the types above and the job
/// modules. A test keeps `shared/events/*.schema.json` equal to them; `make openapi` rewrites them.
pub fn schemas() -> Vec<(&'static str, &'static str, Value)> {
    fn schema_of<T: utoipa::ToSchema>(
        detail_type: &'static str,
        file: &'static str,
    ) -> (&'static str, &'static str, Value) {
        let mut defs = Vec::new();
        T::schemas(&mut defs);
        let mut root = serde_json::to_value(<T as utoipa::PartialSchema>::schema()).unwrap_or_default();
        let defs: serde_json::Map<String, Value> =
            defs.into_iter().map(|(name, schema)| (name, serde_json::to_value(schema).unwrap_or_default())).collect();
        if let Some(object) = root.as_object_mut() {
            object.insert("$schema".into(), Value::String("https://json-schema.org/draft/2020-12/schema".into()));
            object.insert("title".into(), Value::String(detail_type.into()));
            if !defs.is_empty() {
                object.insert("$defs".into(), Value::Object(defs));
            }
        }
        let text = root.to_string().replace("#/components/schemas/", "#/$defs/");
        (file, detail_type, serde_json::from_str(&text).unwrap_or_default())
    }
    vec![
        schema_of::<crate::issues::ActionItemsReady>("Action Items Ready", "action-items-ready"),
        schema_of::<crate::issues::IssuesCreated>("Issues Created", "issues-created"),
        schema_of::<PublishFailed>("Publish Failed", "publish-failed"),
        schema_of::<crate::reports::ReportReady>("Report Ready", "report-ready"),
        schema_of::<crate::reports::PagePublished>("Page Published", "page-published"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/events");

    /// Fails when a committed schema differs from the types; `BLESS=1` rewrites them.
    #[test]
    fn committed_event_schemas_match_the_types() {
        for (file, _, schema) in schemas() {
            let path = format!("{DIR}/{file}.schema.json");
            let generated = serde_json::to_string_pretty(&schema).unwrap() + "\n";
            if std::env::var_os("BLESS").is_some() {
                std::fs::create_dir_all(DIR).unwrap();
                std::fs::write(&path, &generated).unwrap();
            }
            let committed = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(committed == generated, "{path} is stale: run `make openapi` and commit it");
        }
    }

    #[test]
    fn every_reference_in_an_event_schema_resolves() {
        for (file, _, schema) in schemas() {
            let text = schema.to_string();
            for part in text.split("#/$defs/").skip(1) {
                let name: String = part.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                assert!(schema["$defs"].get(&name).is_some(), "{file}: unresolved {name}");
            }
        }
    }

    #[test]
    fn triggers_are_told_apart() {
        let http = serde_json::json!({"requestContext": {}, "version": "2.0"});
        assert!(matches!(Trigger::classify(http), Ok(Trigger::Http(_))));
        let event = serde_json::json!({"id": "e1", "detail-type": "Report Ready", "source": "saas", "detail": {}});
        let sqs = serde_json::json!({"Records": [{"messageId": "m1", "body": event.to_string(),
            "attributes": {"ApproximateReceiveCount": "3"}}]});
        match Trigger::classify(sqs) {
            Ok(Trigger::Sqs(deliveries)) => {
                assert_eq!(deliveries[0].id, "m1");
                assert_eq!(deliveries[0].receive_count, 3);
                assert_eq!(deliveries[0].event.as_ref().unwrap().detail_type, "Report Ready");
            }
            _ => panic!("not an SQS batch"),
        }
        assert!(matches!(Trigger::classify(event), Ok(Trigger::EventBridge(_))));
        assert!(Trigger::classify(serde_json::json!({"hello": 1})).is_err());
    }
}
