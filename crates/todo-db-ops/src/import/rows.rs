//! Counting the rows of a binary COPY stream as it passes, for progress: chunks split the
//! stream anywhere, so the counter keeps its place between them.

/// The header of PostgreSQL's binary COPY format: the 11-byte signature, flags and the length
/// of the header extension (which PostgreSQL writes as zero).
const HEADER: usize = 11 + 4 + 4;

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Header(usize),
    /// The next tuple's field count (or the trailer, -1).
    Count,
    /// The length of the next field; this many fields are left in the tuple.
    Len(u16),
    /// This many bytes of field data are left, then this many fields.
    Data(usize, u16),
    Done,
}

#[derive(Debug)]
pub struct RowCounter {
    state: State,
    /// The bytes read so far of an integer that a chunk boundary split.
    partial: Vec<u8>,
}

impl Default for RowCounter {
    fn default() -> Self {
        RowCounter { state: State::Header(HEADER), partial: Vec::with_capacity(4) }
    }
}

impl RowCounter {
    /// Reads `chunk`; the number of rows it completed.
    pub fn feed(&mut self, mut chunk: &[u8]) -> u64 {
        let mut rows = 0;
        loop {
            match self.state {
                State::Done => return rows,
                State::Header(n) => {
                    let k = n.min(chunk.len());
                    chunk = &chunk[k..];
                    if k < n {
                        self.state = State::Header(n - k);
                        return rows;
                    }
                    self.state = State::Count;
                }
                State::Count => {
                    let Some(b) = self.int(&mut chunk, 2) else { return rows };
                    let count = i16::from_be_bytes([b[0], b[1]]);
                    self.state = match count {
                        c if c < 0 => State::Done,
                        0 => {
                            rows += 1;
                            State::Count
                        }
                        c => State::Len(c as u16),
                    };
                }
                State::Len(fields) => {
                    let Some(b) = self.int(&mut chunk, 4) else { return rows };
                    let len = i32::from_be_bytes([b[0], b[1], b[2], b[3]]);
                    self.state = State::Data(len.max(0) as usize, fields - 1);
                }
                State::Data(n, fields) => {
                    let k = n.min(chunk.len());
                    chunk = &chunk[k..];
                    if k < n {
                        self.state = State::Data(n - k, fields);
                        return rows;
                    }
                    self.state = if fields == 0 {
                        rows += 1;
                        State::Count
                    } else {
                        State::Len(fields)
                    };
                }
            }
        }
    }

    /// The next `n`-byte integer, joining what an earlier chunk left; `None` when `chunk` ends first.
    fn int(&mut self, chunk: &mut &[u8], n: usize) -> Option<[u8; 4]> {
        let k = (n - self.partial.len()).min(chunk.len());
        self.partial.extend_from_slice(&chunk[..k]);
        *chunk = &chunk[k..];
        if self.partial.len() < n {
            return None;
        }
        let mut out = [0u8; 4];
        out[..n].copy_from_slice(&self.partial);
        self.partial.clear();
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A binary COPY stream of `rows` tuples of (int4 value, text "x" * i or NULL).
    fn stream(rows: usize) -> Vec<u8> {
        let mut out = b"PGCOPY\n\xff\r\n\0".to_vec();
        out.extend_from_slice(&[0; 8]);
        for i in 0..rows {
            out.extend_from_slice(&2i16.to_be_bytes());
            out.extend_from_slice(&4i32.to_be_bytes());
            out.extend_from_slice(&(i as i32).to_be_bytes());
            if i % 3 == 0 {
                out.extend_from_slice(&(-1i32).to_be_bytes());
            } else {
                out.extend_from_slice(&(i as i32).to_be_bytes());
                out.extend(std::iter::repeat_n(b'x', i));
            }
        }
        out.extend_from_slice(&(-1i16).to_be_bytes());
        out
    }

    #[test]
    fn counts_every_row_however_the_stream_is_cut() {
        let s = stream(50);
        for size in [1, 2, 3, 5, 7, 64, s.len()] {
            let mut c = RowCounter::default();
            let total: u64 = s.chunks(size).map(|ch| c.feed(ch)).sum();
            assert_eq!(total, 50, "chunks of {size}");
            assert_eq!(c.state, State::Done);
        }
    }
}
