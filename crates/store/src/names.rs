//! Task hub resource names, instance id validation and key escaping, exactly as
//! DurableTask.AzureStorage derives and escapes them, so its tooling habits carry over.
//! Pure: no I/O.

use std::borrow::Cow;
use std::fmt;

use thiserror::Error;

/// Why a task hub name was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TaskHubError {
    #[error(
        "the TaskHub setting '{name}' must be lowercase: the engine's queue functions name their \
         queues %TaskHub%-control-NN, and queue names are lowercase"
    )]
    NotLowercase { name: String },
    #[error("task hub name '{name}' is {len} characters long; it must be 3 to 45 characters")]
    Length { name: String, len: usize },
    #[error("task hub name '{name}' must start with a letter (ASCII), but starts with {ch:?}")]
    FirstNotLetter { name: String, ch: char },
    #[error(
        "task hub name '{name}' may contain only ASCII letters and digits; {ch:?} at index {index} is not allowed"
    )]
    InvalidChar {
        name: String,
        ch: char,
        index: usize,
    },
}

/// Why a control-queue partition count was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("partition count {0} is out of range; it must be 1 to 16")]
pub struct PartitionCountError(pub u32);

/// Why an instance id was refused. Indices are 0-based character (not byte) positions.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InstanceIdError {
    #[error("instance id is empty")]
    Empty,
    #[error("instance id is {len} characters long (UTF-16 units); the maximum is {max}")]
    TooLong { len: usize, max: usize },
    #[error("instance id must not start with '@' (reserved for durable entities)")]
    StartsWithAt,
    #[error("instance id contains the forbidden character {ch:?} at index {index}")]
    ForbiddenChar { ch: char, index: usize },
    #[error("instance id contains the control character U+{code:04X} at index {index}")]
    ControlChar { code: u32, index: usize },
}

/// Why an escaped table key could not be unescaped.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KeyUnescapeError {
    #[error("escaped key ends with a lone '^'")]
    TrailingEscape,
    #[error("escaped key has an unknown escape '^{ch}' at index {index}")]
    UnknownEscape { ch: char, index: usize },
}

/// Maximum and default number of control-queue partitions (DurableTask.AzureStorage).
pub const MAX_PARTITIONS: u32 = 16;
pub const DEFAULT_PARTITIONS: u32 = 4;

/// Number of control queues of a task hub: 1 to 16. Changing it on an existing hub remaps
/// instances to other queues, which DurableTask.AzureStorage also leaves unsupported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PartitionCount(u32);

impl PartitionCount {
    pub fn new(count: u32) -> Result<Self, PartitionCountError> {
        if (1..=MAX_PARTITIONS).contains(&count) {
            Ok(Self(count))
        } else {
            Err(PartitionCountError(count))
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

impl Default for PartitionCount {
    fn default() -> Self {
        Self(DEFAULT_PARTITIONS)
    }
}

/// A validated task hub name and the names of the resources it owns.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TaskHub {
    name: String,
    lower: String,
    partitions: PartitionCount,
}

/// The app setting that names the task hub, and the name used when it is not set.
pub const TASK_HUB_SETTING: &str = "TaskHub";
pub const DEFAULT_TASK_HUB: &str = "durableorchestratorhub";

impl TaskHub {
    /// The task hub named by the `TaskHub` setting in `settings` (app settings reach the worker
    /// as environment variables), or [`DEFAULT_TASK_HUB`] when it is absent or blank.
    ///
    /// The setting must be lowercase: the engine's `function.json` files name their queues
    /// `%TaskHub%-control-00` and so on, the host substitutes the value verbatim, and queue names
    /// must be lowercase.
    pub fn from_settings<K: AsRef<str>, V: AsRef<str>>(
        settings: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self, TaskHubError> {
        let configured = settings
            .into_iter()
            .find(|(key, _)| key.as_ref().eq_ignore_ascii_case(TASK_HUB_SETTING))
            .map(|(_, value)| value.as_ref().trim().to_owned())
            .filter(|value| !value.is_empty());
        let name = configured.as_deref().unwrap_or(DEFAULT_TASK_HUB);
        if name.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(TaskHubError::NotLowercase {
                name: name.to_owned(),
            });
        }
        Self::new(name)
    }

    /// Validates a name from the `TaskHub` setting with the default partition count (4).
    pub fn new(name: &str) -> Result<Self, TaskHubError> {
        Self::with_partitions(name, PartitionCount::default())
    }

    /// Durable Functions' rule: 3 to 45 ASCII letters and digits, starting with a letter (the
    /// first-letter rule comes from table names, which the hub name prefixes).
    pub fn with_partitions(name: &str, partitions: PartitionCount) -> Result<Self, TaskHubError> {
        let len = name.chars().count();
        if !(3..=45).contains(&len) {
            return Err(TaskHubError::Length {
                name: name.to_owned(),
                len,
            });
        }
        if let Some((index, ch)) = name
            .chars()
            .enumerate()
            .find(|(_, c)| !c.is_ascii_alphanumeric())
        {
            return Err(TaskHubError::InvalidChar {
                name: name.to_owned(),
                ch,
                index,
            });
        }
        if let Some(ch) = name.chars().next().filter(|c| !c.is_ascii_alphabetic()) {
            return Err(TaskHubError::FirstNotLetter {
                name: name.to_owned(),
                ch,
            });
        }
        Ok(Self {
            name: name.to_owned(),
            lower: name.to_ascii_lowercase(),
            partitions,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn partitions(&self) -> PartitionCount {
        self.partitions
    }

    /// Table names keep the hub's case; table names are case-insensitive in Azure.
    pub fn history_table(&self) -> String {
        format!("{}History", self.name)
    }

    pub fn instances_table(&self) -> String {
        format!("{}Instances", self.name)
    }

    /// Messages the runtime gave up on, parked until an operator requeues or discards them.
    pub fn poison_table(&self) -> String {
        format!("{}Poison", self.name)
    }

    /// Messages that have waited long for their instance's start, shown by the stuck view.
    pub fn deferred_table(&self) -> String {
        format!("{}Deferred", self.name)
    }

    /// Control queue `index` (0-based), or `None` if the hub has no such partition.
    pub fn control_queue(&self, index: u32) -> Option<String> {
        (index < self.partitions.0).then(|| format!("{}-control-{index:02}", self.lower))
    }

    /// All control queue names, in partition order.
    pub fn control_queues(&self) -> Vec<String> {
        (0..self.partitions.0)
            .map(|i| format!("{}-control-{i:02}", self.lower))
            .collect()
    }

    pub fn work_item_queue(&self) -> String {
        format!("{}-workitems", self.lower)
    }

    pub fn large_messages_container(&self) -> String {
        format!("{}-largemessages", self.lower)
    }

    /// The control-queue partition that owns an instance.
    pub fn partition_of(&self, instance_id: &InstanceId) -> u32 {
        partition_of(instance_id.as_str(), self.partitions)
    }

    /// The control queue that owns an instance.
    pub fn control_queue_of(&self, instance_id: &InstanceId) -> String {
        format!(
            "{}-control-{:02}",
            self.lower,
            self.partition_of(instance_id)
        )
    }
}

impl fmt::Display for TaskHub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

const FNV_OFFSET_BASIS: u32 = 2_166_136_261;
const FNV_PRIME: u32 = 16_777_619;

/// FNV-1a 32-bit over bytes, as DurableTask.AzureStorage's `Fnv1aHashHelper`.
pub fn fnv1a32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(FNV_OFFSET_BASIS, |hash, &b| {
        (hash ^ u32::from(b)).wrapping_mul(FNV_PRIME)
    })
}

/// Partition of an instance id: FNV-1a over its UTF-8 bytes modulo the partition count. Must
/// never change, or in-flight instances move to a queue no one reads for them.
pub fn partition_of(instance_id: &str, partitions: PartitionCount) -> u32 {
    fnv1a32(instance_id.as_bytes()) % partitions.0
}

/// Maximum instance id length, in UTF-16 code units as Durable Functions counts it.
pub const MAX_INSTANCE_ID_LEN: usize = 256;

/// A validated instance id (Durable Functions' client rules).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InstanceId(String);

impl InstanceId {
    pub fn parse(id: &str) -> Result<Self, InstanceIdError> {
        if id.is_empty() {
            return Err(InstanceIdError::Empty);
        }
        // .NET's string.Length, which is what the 256 limit is defined against.
        let len = id.encode_utf16().count();
        if len > MAX_INSTANCE_ID_LEN {
            return Err(InstanceIdError::TooLong {
                len,
                max: MAX_INSTANCE_ID_LEN,
            });
        }
        if id.starts_with('@') {
            return Err(InstanceIdError::StartsWithAt);
        }
        for (index, ch) in id.chars().enumerate() {
            if matches!(ch, '/' | '\\' | '#' | '?') {
                return Err(InstanceIdError::ForbiddenChar { ch, index });
            }
            if is_control(ch) {
                return Err(InstanceIdError::ControlChar {
                    code: u32::from(ch),
                    index,
                });
            }
        }
        Ok(Self(id.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for InstanceId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for InstanceId {
    type Err = InstanceIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// .NET's `char.IsControl`: C0 controls, DEL and the C1 controls.
fn is_control(ch: char) -> bool {
    matches!(u32::from(ch), 0x00..=0x1F | 0x7F..=0x9F)
}

const ESCAPE: char = '^';
/// Control characters are escaped as `^` followed by this offset plus their value ('À').
const CONTROL_OFFSET: u32 = 0xC0;

/// Escapes a Table key as DurableTask.AzureStorage's `KeySanitation.EscapePartitionKey`:
/// the characters Azure Tables forbid in keys, plus the escape character itself.
pub fn escape_key(key: &str) -> Cow<'_, str> {
    if !key
        .chars()
        .any(|c| matches!(c, '^' | '/' | '\\' | '#' | '?') || is_control(c))
    {
        return Cow::Borrowed(key);
    }
    let mut out = String::with_capacity(key.len() + 8);
    for c in key.chars() {
        match c {
            '^' => out.push_str("^^"),
            '/' => out.push_str("^0"),
            '\\' => out.push_str("^1"),
            '#' => out.push_str("^2"),
            '?' => out.push_str("^3"),
            c if is_control(c) => {
                out.push(ESCAPE);
                // 0xC0 + at most 0x9F stays far below the surrogate range, so this never fails.
                out.push(char::from_u32(CONTROL_OFFSET + u32::from(c)).unwrap_or(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Reverses [`escape_key`] (`KeySanitation.UnescapePartitionKey`).
pub fn unescape_key(escaped: &str) -> Result<Cow<'_, str>, KeyUnescapeError> {
    if !escaped.contains(ESCAPE) {
        return Ok(Cow::Borrowed(escaped));
    }
    let mut out = String::with_capacity(escaped.len());
    let mut chars = escaped.chars().enumerate();
    while let Some((_, c)) = chars.next() {
        if c != ESCAPE {
            out.push(c);
            continue;
        }
        let (index, next) = chars.next().ok_or(KeyUnescapeError::TrailingEscape)?;
        let plain = match next {
            '^' => '^',
            '0' => '/',
            '1' => '\\',
            '2' => '#',
            '3' => '?',
            other => u32::from(other)
                .checked_sub(CONTROL_OFFSET)
                .and_then(char::from_u32)
                .filter(|c| is_control(*c))
                .ok_or(KeyUnescapeError::UnknownEscape {
                    ch: other,
                    index: index - 1,
                })?,
        };
        out.push(plain);
    }
    Ok(Cow::Owned(out))
}

/// Doubles `'` so a value can sit inside an OData string literal: `$filter` expressions and
/// the `(PartitionKey='…',RowKey='…')` entity URLs, which azure_data_tables builds without
/// escaping.
pub fn odata_escape(value: &str) -> Cow<'_, str> {
    if value.contains('\'') {
        Cow::Owned(value.replace('\'', "''"))
    } else {
        Cow::Borrowed(value)
    }
}

/// A complete OData string literal, quotes included, for `$filter` expressions.
pub fn odata_literal(value: &str) -> String {
    format!("'{}'", odata_escape(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn resource_names_follow_durable_task_azure_storage() {
        let hub = TaskHub::new("MyHub1").unwrap();
        assert_eq!(hub.history_table(), "MyHub1History");
        assert_eq!(hub.instances_table(), "MyHub1Instances");
        assert_eq!(hub.deferred_table(), "MyHub1Deferred");
        assert_eq!(
            hub.control_queues(),
            [
                "myhub1-control-00",
                "myhub1-control-01",
                "myhub1-control-02",
                "myhub1-control-03"
            ]
        );
        assert_eq!(hub.control_queue(3).as_deref(), Some("myhub1-control-03"));
        assert_eq!(hub.control_queue(4), None);
        assert_eq!(hub.work_item_queue(), "myhub1-workitems");
        assert_eq!(hub.large_messages_container(), "myhub1-largemessages");
        assert_eq!(hub.to_string(), "MyHub1");
    }

    #[test]
    fn sixteen_partitions_use_two_digit_indices() {
        let hub = TaskHub::with_partitions("Hub", PartitionCount::new(16).unwrap()).unwrap();
        let queues = hub.control_queues();
        assert_eq!(queues.len(), 16);
        assert_eq!(queues[15], "hub-control-15");
    }

    #[test]
    fn longest_hub_gives_valid_queue_and_container_names() {
        let name = format!("A{}", "b".repeat(44));
        let hub = TaskHub::new(&name).unwrap();
        for q in hub
            .control_queues()
            .into_iter()
            .chain([hub.work_item_queue(), hub.large_messages_container()])
        {
            assert!(q.len() <= 63, "{q}");
            assert!(q
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
        }
        for table in [hub.instances_table(), hub.deferred_table()] {
            assert!(table.len() <= 63, "{table}");
        }
    }

    #[test]
    fn bad_hub_names_are_refused_with_reason() {
        assert!(matches!(
            TaskHub::new("ab"),
            Err(TaskHubError::Length { len: 2, .. })
        ));
        assert!(matches!(
            TaskHub::new(&"a".repeat(46)),
            Err(TaskHubError::Length { len: 46, .. })
        ));
        assert_eq!(
            TaskHub::new("my-hub"),
            Err(TaskHubError::InvalidChar {
                name: "my-hub".into(),
                ch: '-',
                index: 2
            })
        );
        assert!(matches!(
            TaskHub::new("Hüb1"),
            Err(TaskHubError::InvalidChar {
                ch: 'ü',
                index: 1,
                ..
            })
        ));
        assert!(matches!(
            TaskHub::new("1hub"),
            Err(TaskHubError::FirstNotLetter { ch: '1', .. })
        ));
        let msg = TaskHub::new("my hub").unwrap_err().to_string();
        assert!(msg.contains("'my hub'") && msg.contains("index 2"), "{msg}");
        assert!(TaskHub::new("abc").is_ok());
        assert!(TaskHub::new(&"a".repeat(45)).is_ok());
    }

    #[test]
    fn partition_count_is_bounded() {
        assert_eq!(PartitionCount::default().get(), 4);
        assert_eq!(PartitionCount::new(0), Err(PartitionCountError(0)));
        assert_eq!(PartitionCount::new(17), Err(PartitionCountError(17)));
        assert_eq!(PartitionCount::new(1).map(PartitionCount::get), Ok(1));
        assert_eq!(PartitionCount::new(16).map(PartitionCount::get), Ok(16));
    }

    #[test]
    fn fnv1a_matches_reference_vectors() {
        // Published FNV-1a 32-bit test vectors (Landon Curt Noll's test suite).
        assert_eq!(fnv1a32(b""), 0x811c_9dc5);
        assert_eq!(fnv1a32(b"a"), 0xe40c_292c);
        assert_eq!(fnv1a32(b"foobar"), 0xbf9c_f968);
    }

    #[test]
    fn partition_is_fnv_over_utf8_modulo_count() {
        let four = PartitionCount::default();
        assert_eq!(partition_of("foobar", four), 0xbf9c_f968 % 4);
        let three = PartitionCount::new(3).unwrap();
        assert_eq!(partition_of("a", three), 0xe40c_292c % 3);
        assert_eq!(partition_of("a", three), 1);
        // Non-ASCII ids hash their UTF-8 bytes, not UTF-16 units.
        assert_eq!(partition_of("é", four), fnv1a32(&[0xC3, 0xA9]) % 4);
        // Computed independently (Python) for a realistic id.
        assert_eq!(fnv1a32(b"order-42"), 1_461_995_252);
        assert_eq!(partition_of("order-42", four), 0);
        assert_eq!(partition_of("\u{e9}", four), 1);
        let hub = TaskHub::new("Hub").unwrap();
        let id = InstanceId::parse("foobar").unwrap();
        assert_eq!(hub.partition_of(&id), 0);
        assert_eq!(hub.control_queue_of(&id), "hub-control-00");
    }

    #[test]
    fn instance_ids_are_validated() {
        assert!(InstanceId::parse("order-42:abc def").is_ok());
        assert_eq!(InstanceId::parse(""), Err(InstanceIdError::Empty));
        assert_eq!(
            InstanceId::parse("@counter@k"),
            Err(InstanceIdError::StartsWithAt)
        );
        assert!(InstanceId::parse("a@b").is_ok());
        for (id, ch, index) in [
            ("a/b", '/', 1),
            ("\\", '\\', 0),
            ("ab#", '#', 2),
            ("éa?", '?', 2),
        ] {
            assert_eq!(
                InstanceId::parse(id),
                Err(InstanceIdError::ForbiddenChar { ch, index }),
                "{id}"
            );
        }
        assert_eq!(
            InstanceId::parse("ab\ncd"),
            Err(InstanceIdError::ControlChar {
                code: 0x0A,
                index: 2
            })
        );
        assert_eq!(
            InstanceId::parse("x\u{7f}"),
            Err(InstanceIdError::ControlChar {
                code: 0x7F,
                index: 1
            })
        );
        assert_eq!(
            InstanceId::parse("x\u{9f}"),
            Err(InstanceIdError::ControlChar {
                code: 0x9F,
                index: 1
            })
        );
        assert!(InstanceId::parse("x\u{a0}").is_ok());
        let msg = InstanceId::parse("a/b").unwrap_err().to_string();
        assert!(msg.contains("'/'") && msg.contains("index 1"), "{msg}");
    }

    #[test]
    fn instance_id_length_counts_utf16_units() {
        assert!(InstanceId::parse(&"a".repeat(256)).is_ok());
        assert_eq!(
            InstanceId::parse(&"a".repeat(257)),
            Err(InstanceIdError::TooLong { len: 257, max: 256 })
        );
        // An astral character is two UTF-16 units, as .NET counts it.
        let id = format!("{}😀", "a".repeat(255));
        assert_eq!(
            InstanceId::parse(&id),
            Err(InstanceIdError::TooLong { len: 257, max: 256 })
        );
        assert_eq!(InstanceId::parse("abc").unwrap().as_str(), "abc");
        assert_eq!("abc".parse::<InstanceId>().unwrap().into_string(), "abc");
    }

    #[test]
    fn key_escaping_matches_key_sanitation() {
        assert!(matches!(
            escape_key("plain key"),
            Cow::Borrowed("plain key")
        ));
        assert_eq!(escape_key("a^b/c\\d#e?f"), "a^^b^0c^1d^2e^3f");
        assert_eq!(escape_key("\u{0}"), "^\u{C0}");
        assert_eq!(escape_key("\u{1f}"), "^\u{DF}");
        assert_eq!(escape_key("\u{7f}"), "^\u{13F}");
        assert_eq!(escape_key("\u{9f}"), "^\u{15F}");
        assert_eq!(unescape_key("a^^b^0c^1d^2e^3f").unwrap(), "a^b/c\\d#e?f");
        assert_eq!(unescape_key("^\u{C0}x").unwrap(), "\u{0}x");
        assert!(matches!(unescape_key("plain"), Ok(Cow::Borrowed("plain"))));
    }

    #[test]
    fn malformed_escapes_are_refused() {
        assert_eq!(unescape_key("ab^"), Err(KeyUnescapeError::TrailingEscape));
        assert_eq!(
            unescape_key("a^x"),
            Err(KeyUnescapeError::UnknownEscape { ch: 'x', index: 1 })
        );
        // 'À' + 0x20 would be a space, which is not a control character.
        assert_eq!(
            unescape_key("^\u{E0}"),
            Err(KeyUnescapeError::UnknownEscape {
                ch: '\u{E0}',
                index: 0
            })
        );
    }

    #[test]
    fn odata_quotes_are_doubled() {
        assert!(matches!(odata_escape("abc"), Cow::Borrowed("abc")));
        assert_eq!(odata_escape("a'b''c"), "a''b''''c");
        assert_eq!(odata_literal("it's"), "'it''s'");
        assert_eq!(odata_literal(""), "''");
    }

    proptest! {
        #[test]
        fn escape_round_trips(key in any::<String>()) {
            let escaped = escape_key(&key);
            prop_assert!(!escaped.chars().any(|c| matches!(c, '/' | '\\' | '#' | '?') || is_control(c)));
            prop_assert_eq!(unescape_key(&escaped).unwrap(), key.as_str());
        }

        #[test]
        fn escape_round_trips_on_special_heavy_keys(key in "[\\^/\\\\#?a\\x00-\\x1f\\x7f-\\x9f]{0,40}") {
            let escaped = escape_key(&key);
            prop_assert_eq!(unescape_key(&escaped).unwrap(), key.as_str());
        }

        #[test]
        fn valid_instance_ids_have_a_partition_in_range(id in "[a-zA-Z0-9:_. -]{1,64}", n in 1u32..=16) {
            let id = InstanceId::parse(&id).unwrap();
            prop_assert!(partition_of(id.as_str(), PartitionCount::new(n).unwrap()) < n);
        }
    }

    #[test]
    fn task_hub_comes_from_the_setting_or_the_default() {
        let named = TaskHub::from_settings([("TaskHub", "ordershub")]).unwrap();
        assert_eq!(named.name(), "ordershub");
        assert!(matches!(
            TaskHub::from_settings([("TaskHub", "OrdersHub")]),
            Err(TaskHubError::NotLowercase { .. })
        ));
        let unset = TaskHub::from_settings(Vec::<(String, String)>::new()).unwrap();
        assert_eq!(unset.name(), DEFAULT_TASK_HUB);
        let blank = TaskHub::from_settings([("taskhub", "  ")]).unwrap();
        assert_eq!(blank.name(), DEFAULT_TASK_HUB);
        assert!(matches!(
            TaskHub::from_settings([("TaskHub", "bad-name")]),
            Err(TaskHubError::InvalidChar { .. })
        ));
    }
}
