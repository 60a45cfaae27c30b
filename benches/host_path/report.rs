//! Figures measured over several runs (each run's value printed as it comes, then the median with
//! min and max, also into the JSON) and the short tables printed at the end.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{json, Map, Value};

#[derive(Default)]
pub struct Runs {
    values: BTreeMap<String, Vec<f64>>,
}

impl Runs {
    pub fn record(&mut self, name: String, value: f64) {
        println!("run_{name}={value:.2}");
        self.values.entry(name).or_default().push(value);
    }

    pub fn median(&self, name: &str) -> Option<f64> {
        self.values.get(name).map(|values| summary(values).0)
    }

    /// Prints each figure's median, min and max and adds them to `json`.
    pub fn finish(&self, json: &mut Map<String, Value>) {
        for (name, values) in &self.values {
            let (median, min, max) = summary(values);
            println!("{name}={median:.2} (min {min:.2}, max {max:.2})");
            json.insert(
                name.clone(),
                json!({"median": median, "min": min, "max": max, "runs": values}),
            );
        }
    }
}

/// Median, min and max of a figure over the runs.
fn summary(values: &[f64]) -> (f64, f64, f64) {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    (
        sorted[sorted.len() / 2],
        sorted[0],
        sorted[sorted.len() - 1],
    )
}

/// A table of figures: one row per figure, one column per setup; "-" where nothing was measured.
pub struct Table {
    pub title: String,
    pub columns: Vec<String>,
    pub rows: Vec<(String, Vec<Option<f64>>)>,
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let label_width = self.rows.iter().map(|(label, _)| label.len()).max();
        let label_width = label_width.unwrap_or(0).max(self.title.len());
        write!(f, "{:<label_width$}", self.title)?;
        for column in &self.columns {
            write!(f, " {column:>12}")?;
        }
        writeln!(f)?;
        for (label, cells) in &self.rows {
            write!(f, "{label:<label_width$}")?;
            for cell in cells {
                let text = cell.map_or("-".to_string(), number);
                write!(f, " {text:>12}")?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

/// Three significant digits or so: enough to compare, short enough to read.
fn number(value: f64) -> String {
    match value.abs() {
        v if v >= 100.0 => format!("{value:.0}"),
        v if v >= 10.0 => format!("{value:.1}"),
        _ => format!("{value:.2}"),
    }
}
