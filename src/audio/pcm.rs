//! Linear PCM16 little-endian (OpenAI Realtime's `pcm16`, 24 kHz mono), which may be split
//! between chunks at an odd byte.

/// Turns PCM16 bytes into samples in [-1, 1], carrying an odd trailing byte to the next chunk.
#[derive(Debug, Default, Clone)]
pub struct Pcm16 {
    carry: Option<u8>,
}

impl Pcm16 {
    pub fn decode(&mut self, bytes: &[u8], out: &mut Vec<f32>) {
        out.clear();
        let mut rest = bytes;
        if let Some(lo) = self.carry.take() {
            if let Some((&hi, r)) = rest.split_first() {
                out.push(f32::from(i16::from_le_bytes([lo, hi])) / 32768.0);
                rest = r;
            } else {
                self.carry = Some(lo);
                return;
            }
        }
        let pairs = rest.chunks_exact(2);
        self.carry = pairs.remainder().first().copied();
        out.extend(pairs.map(|p| f32::from(i16::from_le_bytes([p[0], p[1]])) / 32768.0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_splits_are_carried() {
        let samples: [i16; 3] = [0, 16384, -32768];
        let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        let mut d = Pcm16::default();
        let mut out = Vec::new();
        let mut all = Vec::new();
        for piece in [&bytes[..1], &bytes[1..4], &bytes[4..]] {
            d.decode(piece, &mut out);
            all.extend_from_slice(&out);
        }
        assert_eq!(all, vec![0.0, 0.5, -1.0]);
    }
}
