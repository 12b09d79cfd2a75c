//! Escalation and refusal detection in answer text: the answer handed the user to a human,
//! told them to contact support, or declined. Phrases are matched as lowercase substrings
//! after normalising apostrophes and whitespace, so "I’m  unable to help" matches
//! "i'm unable to help". The built-in list is English; suites and endpoints add their own.

/// The built-in hand-off and refusal phrases (normalised).
pub const BUILTIN: &[&str] = &[
    // Hand-off to a person.
    "transfer you to a human",
    "transfer you to an agent",
    "transferring you to",
    "connect you with a human",
    "connect you with an agent",
    "connect you to a human",
    "connect you to an agent",
    "human agent",
    "live agent",
    "a human representative",
    "speak to a representative",
    "speak with a representative",
    "speak to a human",
    "talk to a human",
    "escalate this to",
    "escalating this to",
    "contact customer support",
    "contact our support",
    "contact support",
    "reach out to support",
    "reach out to our support",
    "open a support ticket",
    // Refusal or inability.
    "i'm unable to help",
    "i am unable to help",
    "i'm not able to help",
    "i am not able to help",
    "i can't help with that",
    "i cannot help with that",
    "i can't assist with",
    "i cannot assist with",
    "i'm sorry, but i can't",
    "i'm sorry, but i cannot",
    "i am sorry, but i cannot",
    "i am not sure i can help",
    "outside what i know",
    "i don't have access to",
    "i do not have access to",
    "i don't have information about",
    "i do not have information about",
    "as an ai language model",
];

/// Lowercase, typographic apostrophes made plain, runs of whitespace made one space.
pub fn normalize(text: &str) -> String {
    let lower = text
        .to_lowercase()
        .replace(['\u{2019}', '\u{2018}', '`'], "'");
    lower.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The first phrase found in `answer` (built-in ones first), if any.
pub fn detect(answer: &str, builtin: bool, extra: &[String]) -> Option<String> {
    let a = normalize(answer);
    if builtin {
        if let Some(p) = BUILTIN.iter().find(|p| a.contains(**p)) {
            return Some((*p).to_string());
        }
    }
    extra.iter().find(|p| a.contains(p.as_str())).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_hand_offs_and_refusals_whatever_the_typography() {
        assert_eq!(
            detect("I’m  unable to help with that,\nsorry.", true, &[]).as_deref(),
            Some("i'm unable to help")
        );
        assert_eq!(
            detect("Let me TRANSFER YOU TO A HUMAN agent.", true, &[]).as_deref(),
            Some("transfer you to a human")
        );
        assert_eq!(detect("The capital of France is Paris.", true, &[]), None);
        // The suite's own phrases, with or without the built-in list.
        let extra = vec![normalize("Bitte wenden Sie sich an")];
        assert!(detect("Bitte wenden  Sie sich an den Support", false, &extra).is_some());
        assert_eq!(detect("I'm unable to help", false, &extra), None);
    }

    #[test]
    fn every_builtin_phrase_is_normalised() {
        for p in BUILTIN {
            assert_eq!(normalize(p), *p);
        }
    }
}
