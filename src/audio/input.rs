//! The input audio of a voice case: a WAV file read and cut into base64 chunks of 100 ms in
//! the session's format (PCM16, G.711 mu-law or A-law). The one place in `audio` that reads
//! a file; shared by the golden-set loader (which checks the file at load time) and the
//! realtime driver (which sends it).

use std::path::Path;

use base64::Engine as _;

use super::{g711, wav};
use crate::suite::AudioFormat;

/// The largest input WAV sent (about 10 minutes of 24 kHz PCM16).
pub const MAX_INPUT_WAV: u64 = 32 * 1024 * 1024;

/// Why an input WAV cannot be used; the message names the file.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct InputError(String);

/// Reads a WAV file and cuts it into base64 chunks of 100 ms in the session's format.
pub fn read_input(path: &str, format: AudioFormat) -> Result<Vec<String>, InputError> {
    let size = std::fs::metadata(Path::new(path))
        .map_err(|e| InputError(format!("cannot read {path}: {e}")))?
        .len();
    if size > MAX_INPUT_WAV {
        return Err(InputError(format!(
            "{path} is {size} bytes; input audio is limited to {MAX_INPUT_WAV} bytes"
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| InputError(format!("cannot read {path}: {e}")))?;
    let rec = wav::read(&bytes).map_err(|e| InputError(format!("{path}: {e}")))?;
    if rec.rate != format.rate() {
        return Err(InputError(format!(
            "{path} is {} Hz; a `{}` session takes {} Hz",
            rec.rate,
            format.as_str(),
            format.rate()
        )));
    }
    let per_chunk = (format.rate() / 10) as usize;
    Ok(rec
        .samples
        .chunks(per_chunk.max(1))
        .map(|c| {
            let raw: Vec<u8> = match format {
                AudioFormat::Pcm16 => c.iter().flat_map(|s| s.to_le_bytes()).collect(),
                AudioFormat::Pcmu => c.iter().map(|&s| g711::linear_to_ulaw(s)).collect(),
                AudioFormat::Pcma => c.iter().map(|&s| g711::linear_to_alaw(s)).collect(),
            };
            base64::engine::general_purpose::STANDARD.encode(raw)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_foreign_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("absent.wav");
        let e = read_input(&missing.to_string_lossy(), AudioFormat::Pcm16).unwrap_err();
        assert!(e.to_string().contains("absent.wav"), "{e}");
        let junk = dir.path().join("junk.wav");
        std::fs::write(&junk, b"not a wav at all").unwrap();
        let e = read_input(&junk.to_string_lossy(), AudioFormat::Pcmu).unwrap_err();
        assert!(e.to_string().starts_with(&*junk.to_string_lossy()), "{e}");
    }
}
