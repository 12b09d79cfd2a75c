//! WAV input for voice probes that speak to the endpoint (`input.audio` of a case).

use super::AudioError;

/// A mono 16-bit PCM recording.
#[derive(Debug, Clone, PartialEq)]
pub struct Recording {
    pub rate: u32,
    pub samples: Vec<i16>,
}

/// Reads a WAV file's bytes: 16-bit integer PCM, mono.
pub fn read(bytes: &[u8]) -> Result<Recording, AudioError> {
    let reader = hound::WavReader::new(std::io::Cursor::new(bytes))
        .map_err(|e| AudioError::Corrupt(format!("not a readable WAV file: {e}")))?;
    let spec = reader.spec();
    if spec.channels != 1
        || spec.bits_per_sample != 16
        || spec.sample_format != hound::SampleFormat::Int
    {
        return Err(AudioError::Unsupported(format!(
            "WAV is {} channel(s) of {}-bit {:?}; canary sends mono 16-bit integer PCM",
            spec.channels, spec.bits_per_sample, spec.sample_format
        )));
    }
    let samples = reader
        .into_samples::<i16>()
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| AudioError::Corrupt(format!("WAV samples: {e}")))?;
    Ok(Recording {
        rate: spec.sample_rate,
        samples,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wav(channels: u16, rate: u32, samples: &[i16]) -> Vec<u8> {
        let mut out = std::io::Cursor::new(Vec::new());
        let spec = hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::new(&mut out, spec).unwrap();
        for s in samples {
            w.write_sample(*s).unwrap();
        }
        w.finalize().unwrap();
        out.into_inner()
    }

    #[test]
    fn reads_mono_pcm16_and_refuses_the_rest() {
        let r = read(&wav(1, 24_000, &[1, -2, 3])).unwrap();
        assert_eq!(r.rate, 24_000);
        assert_eq!(r.samples, vec![1, -2, 3]);
        assert!(matches!(
            read(&wav(2, 24_000, &[1, 2])),
            Err(AudioError::Unsupported(_))
        ));
        assert!(read(b"garbage").is_err());
    }
}
