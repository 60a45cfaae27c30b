//! The medallion pipeline: `MedallionPipeline` lands raw records in bronze partitions, cleanses
//! every partition to silver in parallel, and aggregates silver into a gold summary per category.
//! Stages hand each other blob names, never records, so history stays small whatever the data.

mod records;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use self::records::{cleanse, generate, partition_of, Rejection, SilverRecord};
use super::{json_blobs, simulate_work, WorkflowSettings};
use durable_engine::{
    join_all, ActivityContext, ActivityError, OrchestrationContext, OrchestrationError,
    RegistryBuilder,
};
use durable_store::artifacts::ArtifactStore;

const WORKFLOW: &str = "MedallionPipeline";
const BRONZE: &str = "BronzeIngest";
const SILVER: &str = "SilverCleanse";
const GOLD: &str = "GoldAggregate";
const DEFAULT_PARTITIONS: u32 = 4;
/// Each partition is one parallel silver activity; beyond this the fan-out is a mistake.
const MAX_PARTITIONS: u32 = 256;
/// Generated data is held in memory by one activity.
const MAX_GENERATED_RECORDS: u64 = 1_000_000;

/// `{"Records":[…],"Partitions":4}` or `{"Generate":{"Partitions":4,"RecordsPerPartition":1000,
/// "Seed":42}}`; a top-level `Partitions` also overrides the generated data's partition count.
#[derive(Serialize, Deserialize, Debug, Default)]
#[serde(rename_all = "PascalCase", default)]
struct PipelineInput {
    records: Option<Vec<Value>>,
    partitions: Option<u32>,
    generate: Option<Generate>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug)]
#[serde(rename_all = "PascalCase", default)]
struct Generate {
    partitions: u32,
    records_per_partition: u64,
    seed: u64,
}

impl Default for Generate {
    fn default() -> Self {
        Self {
            partitions: DEFAULT_PARTITIONS,
            records_per_partition: 1000,
            seed: 42,
        }
    }
}

/// What bronze ingests: the records themselves, or how to generate them.
#[derive(Serialize, Deserialize, Debug)]
#[serde(rename_all_fields = "PascalCase")]
enum Source {
    Records(Vec<Value>),
    Generate { count: u64, seed: u64 },
}

#[derive(Serialize, Deserialize, Debug)]
#[serde(rename_all = "PascalCase")]
struct BronzeInput {
    source: Source,
    partitions: u32,
}

#[derive(Serialize, Deserialize, Debug)]
#[serde(rename_all = "PascalCase")]
struct BronzeOutput {
    /// One blob per partition, in partition order.
    blobs: Vec<String>,
    records: u64,
}

#[derive(Serialize, Deserialize, Debug)]
#[serde(rename_all = "PascalCase")]
struct SilverInput {
    partition: usize,
    bronze: String,
}

#[derive(Serialize, Deserialize, Debug)]
#[serde(rename_all = "PascalCase")]
struct SilverOutput {
    blob: String,
    kept: u64,
    /// Dropped records by reason, for whoever reads the history.
    rejected: BTreeMap<Rejection, u64>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "PascalCase")]
struct CategoryTotals {
    count: u64,
    sum: f64,
}

type Gold = BTreeMap<String, CategoryTotals>;

pub(super) fn register(
    builder: RegistryBuilder,
    settings: &WorkflowSettings,
    artifacts: &Arc<dyn ArtifactStore>,
) -> RegistryBuilder {
    let work = settings.activity_work_delay;
    let (bronze, silver, gold) = (artifacts.clone(), artifacts.clone(), artifacts.clone());
    builder
        .orchestrator(WORKFLOW, pipeline)
        .activity(BRONZE, move |ctx, input| {
            bronze_ingest(ctx, input, bronze.clone(), work)
        })
        .activity(SILVER, move |ctx, input| {
            silver_cleanse(ctx, input, silver.clone(), work)
        })
        .activity(GOLD, move |ctx, blobs| {
            gold_aggregate(ctx, blobs, gold.clone(), work)
        })
}

async fn pipeline(
    ctx: OrchestrationContext,
    input: PipelineInput,
) -> Result<Value, OrchestrationError> {
    let bronze_input = bronze_input(input).map_err(|message| {
        OrchestrationError::with_type("InvalidInput", format!("{WORKFLOW}: {message}"))
    })?;
    let bronze: BronzeOutput = ctx.call_activity(BRONZE, &bronze_input).await?;

    let cleansing = bronze
        .blobs
        .into_iter()
        .enumerate()
        .map(|(partition, blob)| {
            ctx.call_activity::<SilverOutput>(
                SILVER,
                &SilverInput {
                    partition,
                    bronze: blob,
                },
            )
        });
    let silver = join_all(cleansing)
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    let kept: u64 = silver.iter().map(|part| part.kept).sum();
    let rejected: u64 = silver.iter().flat_map(|part| part.rejected.values()).sum();

    let silver_blobs: Vec<&str> = silver.iter().map(|part| part.blob.as_str()).collect();
    let gold: Gold = ctx.call_activity(GOLD, &silver_blobs).await?;
    if !ctx.is_replaying() {
        tracing::info!(
            instance_id = ctx.instance_id(),
            bronze = bronze.records,
            kept,
            rejected,
            "{WORKFLOW} completed"
        );
    }
    Ok(json!({"Bronze": bronze.records, "Silver": kept, "Rejected": rejected, "Gold": gold}))
}

fn bronze_input(input: PipelineInput) -> Result<BronzeInput, String> {
    let (source, partitions) = match (input.records, input.generate) {
        (Some(records), None) => (
            Source::Records(records),
            input.partitions.unwrap_or(DEFAULT_PARTITIONS),
        ),
        (None, Some(generate)) => {
            let count = u64::from(generate.partitions)
                .checked_mul(generate.records_per_partition)
                .filter(|count| *count <= MAX_GENERATED_RECORDS)
                .ok_or_else(|| {
                    format!("Generate asks for more than {MAX_GENERATED_RECORDS} records")
                })?;
            let source = Source::Generate {
                count,
                seed: generate.seed,
            };
            (source, input.partitions.unwrap_or(generate.partitions))
        }
        _ => return Err("the input needs exactly one of Records and Generate".to_string()),
    };
    if !(1..=MAX_PARTITIONS).contains(&partitions) {
        return Err(format!("Partitions must be between 1 and {MAX_PARTITIONS}"));
    }
    Ok(BronzeInput { source, partitions })
}

/// `medallion/{instance id}/{stage}`: one folder per run, so runs never mix.
fn blob_name(instance_id: &str, stage: &str) -> String {
    format!("medallion/{instance_id}/{stage}")
}

/// Splits the records by the hash of their Id and stores each partition unchanged, in input
/// order, so silver's "first wins" sees the input's order.
async fn bronze_ingest(
    ctx: ActivityContext,
    input: BronzeInput,
    artifacts: Arc<dyn ArtifactStore>,
    work: Duration,
) -> Result<BronzeOutput, ActivityError> {
    simulate_work(work).await;
    let records = match input.source {
        Source::Records(records) => records,
        Source::Generate { count, seed } => generate(count, seed),
    };
    let mut partitions: Vec<Vec<Value>> = vec![Vec::new(); input.partitions as usize];
    let total = records.len() as u64;
    for record in records {
        partitions[partition_of(&record, input.partitions)].push(record);
    }
    let mut blobs = Vec::with_capacity(partitions.len());
    for (index, partition) in partitions.iter().enumerate() {
        let name = blob_name(&ctx.instance_id, &format!("bronze/part-{index}.json"));
        json_blobs::put(artifacts.as_ref(), &name, partition).await?;
        blobs.push(name);
    }
    Ok(BronzeOutput {
        blobs,
        records: total,
    })
}

/// Keeps the records that pass the rules, the first of each Id among them (all copies of an Id
/// share this partition), with Category normalised.
async fn silver_cleanse(
    ctx: ActivityContext,
    input: SilverInput,
    artifacts: Arc<dyn ArtifactStore>,
    work: Duration,
) -> Result<SilverOutput, ActivityError> {
    simulate_work(work).await;
    let store = artifacts.as_ref();
    let bronze: Vec<Value> = json_blobs::get(store, &input.bronze).await?;
    let mut seen = HashSet::new();
    let mut kept = Vec::new();
    let mut rejected = BTreeMap::new();
    for record in &bronze {
        match cleanse(record) {
            Ok(silver) if seen.insert(silver.id.clone()) => kept.push(silver),
            Ok(_) => *rejected.entry(Rejection::DuplicateId).or_default() += 1,
            Err(rejection) => *rejected.entry(rejection).or_default() += 1,
        }
    }
    let blob = blob_name(
        &ctx.instance_id,
        &format!("silver/part-{}.json", input.partition),
    );
    json_blobs::put(store, &blob, &kept).await?;
    Ok(SilverOutput {
        blob,
        kept: kept.len() as u64,
        rejected,
    })
}

/// Count and sum per category over every silver partition; stored as `gold.json` too.
async fn gold_aggregate(
    ctx: ActivityContext,
    silver_blobs: Vec<String>,
    artifacts: Arc<dyn ArtifactStore>,
    work: Duration,
) -> Result<Gold, ActivityError> {
    simulate_work(work).await;
    let store = artifacts.as_ref();
    let mut gold = Gold::new();
    for blob in &silver_blobs {
        let records: Vec<SilverRecord> = json_blobs::get(store, blob).await?;
        for record in records {
            let totals = gold.entry(record.category).or_default();
            totals.count += 1;
            totals.sum += record.amount;
        }
    }
    json_blobs::put(store, &blob_name(&ctx.instance_id, "gold.json"), &gold).await?;
    Ok(gold)
}

#[cfg(test)]
mod tests {
    use futures_executor::block_on;

    use super::*;
    use crate::testing::runtime;
    use durable_engine::OrchestrationStatus;
    use durable_runtime::testkit::InMemoryRuntime;
    use durable_store::artifacts::MemoryArtifactStore;

    const ID: &str = "pipeline";

    fn run(input: &Value) -> (InMemoryRuntime, Arc<MemoryArtifactStore>, Value) {
        let (mut rt, store) = runtime();
        rt.start(WORKFLOW, ID, input).unwrap();
        rt.run_to_completion(Duration::from_secs(3600)).unwrap();
        let state = rt.state(ID).unwrap();
        assert_eq!(state.status, OrchestrationStatus::Completed, "{state:?}");
        let output = state.output_as().unwrap();
        (rt, store, output)
    }

    fn read(store: &MemoryArtifactStore, name: &str) -> Value {
        let bytes = block_on(store.get(name))
            .unwrap()
            .unwrap_or_else(|| panic!("blob {name} is missing"));
        serde_json::from_slice(&bytes).unwrap()
    }

    /// Each record with what silver must make of it: `Some((category, amount))` if kept.
    fn dataset() -> Vec<(Value, Option<(&'static str, f64)>)> {
        let at = "2026-01-01T00:00:00Z";
        vec![
            (
                json!({"Id":"a","Category":"Books","Amount":10.0,"Timestamp":at}),
                Some(("books", 10.0)),
            ),
            (
                json!({
                    "Id": "b",
                    "Category": " books ",
                    "Amount": 5.5,
                    "Timestamp": "2026-01-02T00:00:00+02:00",
                }),
                Some(("books", 5.5)),
            ),
            // A later copy of a kept Id.
            (
                json!({"Id":"a","Category":"Toys","Amount":99,"Timestamp":at}),
                None,
            ),
            (
                json!({"Id":"c","Category":"TOYS","Amount":"12","Timestamp":at}),
                None,
            ),
            (json!({"Category":"toys","Amount":1,"Timestamp":at}), None),
            (
                json!({"Id":"","Category":"toys","Amount":1,"Timestamp":at}),
                None,
            ),
            (
                json!({"Id":"d","Category":"  ","Amount":1,"Timestamp":at}),
                None,
            ),
            (
                json!({"Id":"e","Category":"Garden","Amount":-1,"Timestamp":at}),
                None,
            ),
            (
                json!({"Id":"f","Category":"Garden","Amount":0,"Timestamp":"yesterday"}),
                None,
            ),
            (
                json!({"Id":"g","Category":"Toys","Amount":7.25,"Timestamp":at}),
                Some(("toys", 7.25)),
            ),
            // The first *valid* record of Id c: the invalid one before it does not count.
            (
                json!({"Id":"c","Category":"toys ","Amount":2.75,"Timestamp":at}),
                Some(("toys", 2.75)),
            ),
            (
                json!({"Id":"g","Category":"garden","Amount":1000,"Timestamp":at}),
                None,
            ),
            (
                json!({"Id":"h","Category":"GARDEN","Amount":0,"Timestamp":at}),
                Some(("garden", 0.0)),
            ),
            (json!({"Id":"i","Category":"books"}), None),
            (json!(42), None),
            (
                json!({"Id":"j","Category":"Food","Amount":0.1,"Timestamp":at}),
                Some(("food", 0.1)),
            ),
            (
                json!({"Id":"k","Category":"food","Amount":0.2,"Timestamp":at}),
                Some(("food", 0.2)),
            ),
        ]
    }

    #[test]
    fn hand_built_records_are_cleansed_and_aggregated() {
        let dataset = dataset();
        let records: Vec<Value> = dataset.iter().map(|(record, _)| record.clone()).collect();
        let (_, store, output) = run(&json!({"Records": records, "Partitions": 3}));

        let mut expected: BTreeMap<&str, (u64, f64)> = BTreeMap::new();
        for (category, amount) in dataset.iter().filter_map(|(_, kept)| *kept) {
            let entry = expected.entry(category).or_default();
            entry.0 += 1;
            entry.1 += amount;
        }
        let kept: u64 = expected.values().map(|(count, _)| count).sum();
        assert_eq!(output["Bronze"], json!(dataset.len()));
        assert_eq!(output["Silver"], json!(kept));
        assert_eq!(output["Rejected"], json!(dataset.len() as u64 - kept));
        let gold = output["Gold"].as_object().unwrap();
        assert_eq!(
            gold.keys().map(String::as_str).collect::<Vec<_>>(),
            expected.keys().copied().collect::<Vec<_>>()
        );
        for (category, (count, sum)) in &expected {
            assert_eq!(gold[*category]["Count"], json!(count), "{category}");
            let actual = gold[*category]["Sum"].as_f64().unwrap();
            assert!((actual - sum).abs() < 1e-9, "{category}: {actual} vs {sum}");
        }
        assert_eq!(read(&store, "medallion/pipeline/gold.json"), output["Gold"]);
    }

    #[test]
    fn bronze_keeps_records_unchanged_in_their_hash_partition() {
        let records: Vec<Value> = dataset().into_iter().map(|(record, _)| record).collect();
        let (_, store, _) = run(&json!({"Records": records, "Partitions": 3}));

        let mut stored = Vec::new();
        for partition in 0..3 {
            let part = read(
                &store,
                &format!("medallion/pipeline/bronze/part-{partition}.json"),
            );
            let expected: Vec<&Value> = records
                .iter()
                .filter(|record| partition_of(record, 3) == partition)
                .collect();
            assert_eq!(
                part.as_array().unwrap().iter().collect::<Vec<_>>(),
                expected
            );
            stored.extend(part.as_array().unwrap().clone());
        }
        assert_eq!(stored.len(), records.len());
        let silver_ids: Vec<Value> = (0..3)
            .flat_map(|partition| {
                read(
                    &store,
                    &format!("medallion/pipeline/silver/part-{partition}.json"),
                )
                .as_array()
                .unwrap()
                .iter()
                .map(|record| record["Id"].clone())
                .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(silver_ids.len(), 7);
    }

    #[test]
    fn generated_data_flows_through_every_stage() {
        let (_, store, output) =
            run(&json!({"Generate": {"Partitions": 4, "RecordsPerPartition": 1000, "Seed": 42}}));

        let bronze = output["Bronze"].as_u64().unwrap();
        let silver = output["Silver"].as_u64().unwrap();
        let rejected = output["Rejected"].as_u64().unwrap();
        assert_eq!(bronze, 4000);
        assert_eq!(bronze, silver + rejected);
        assert!(rejected > 0 && silver > 0, "{output}");
        let gold: Gold = serde_json::from_value(output["Gold"].clone()).unwrap();
        assert_eq!(
            gold.values().map(|totals| totals.count).sum::<u64>(),
            silver
        );
        // The messy spellings fold into five normalised categories.
        assert_eq!(
            gold.keys().map(String::as_str).collect::<Vec<_>>(),
            ["books", "electronics", "food", "garden", "toys"]
        );
        assert_eq!(read(&store, "medallion/pipeline/gold.json"), output["Gold"]);
        assert_eq!(
            block_on(store.list("medallion/pipeline/bronze/"))
                .unwrap()
                .len(),
            4
        );
        assert_eq!(
            block_on(store.list("medallion/pipeline/silver/"))
                .unwrap()
                .len(),
            4
        );
    }

    #[test]
    fn inputs_without_exactly_one_source_are_refused() {
        for input in [
            json!({}),
            json!({"Records": [], "Generate": {}}),
            json!({"Records": [], "Partitions": 0}),
            json!({"Generate": {"Partitions": 1000}}),
        ] {
            let (mut rt, _) = runtime();
            rt.start(WORKFLOW, ID, &input).unwrap();
            rt.run_to_completion(Duration::from_secs(60)).unwrap();
            let state = rt.state(ID).unwrap();
            assert_eq!(state.status, OrchestrationStatus::Failed, "{input}");
            assert_eq!(state.failure.as_ref().unwrap().error_type, "InvalidInput");
        }
    }
}
