//! What a judged case run records, as plain data: each judgment, each similarity
//! comparison and each conversation turn. The observation and the report carry these; the
//! judged runtime (`schedule::judged`) fills them.

use serde::Serialize;

use crate::check::judge::Judgment;
use crate::check::CheckResult;
use crate::measure::sli::Sli;

/// One judgment of one answer, as the case record shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JudgeRecord {
    /// The turn judged (1-based); absent for a single-turn case or the whole conversation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub turn: Option<u32>,
    /// `pass`, `fail` or `judge_error`.
    pub verdict: &'static str,
    #[serde(flatten)]
    pub judgment: Judgment,
    /// The human label of the case (`expect.label`), true for pass.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<bool>,
    /// Served from the judgment cache: no judge call was made.
    pub cached: bool,
}

impl JudgeRecord {
    pub fn passed(&self) -> bool {
        self.judgment.passed == Some(true)
    }
}

/// One similarity comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimilarRecord {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub turn: Option<u32>,
    /// Cosine similarity of the answer and the reference (`None`: the embeddings failed).
    pub similarity: Option<f64>,
    pub threshold: f64,
    pub passed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One turn of a conversation, as the case record shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TurnRecord {
    pub turn: u32,
    pub outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub latency: std::collections::BTreeMap<Sli, f64>,
    /// Tool calls answered from canned results before the turn's answer.
    pub tool_calls: u32,
    pub checks: Vec<CheckResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
}
