//! Sinks: where results go. `metrics` is the one Prometheus model every output shares
//! (`push`, `remote_write`, `textfile`, and `/metrics` in serve mode); `spool` keeps what
//! could not be delivered for the next run; `report` writes the JSON report and `table`
//! renders the terminal table.

pub mod calibrate;
pub mod expfmt;
pub mod export;
pub mod http_out;
pub mod metrics;
pub mod otlp;
pub mod push;
pub mod remote_write;
pub mod report;
pub mod spool;
pub mod table;
pub mod target;
pub mod textfile;
pub mod yaml_out;
