//! Sinks: where results go. `report` writes the JSON report, `table` renders the terminal
//! table. (Prometheus outputs and history plug in here.)

pub mod report;
pub mod table;
