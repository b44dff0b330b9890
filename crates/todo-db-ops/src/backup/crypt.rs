//! Backup encryption: ChaCha20-Poly1305 over 64 KiB chunks, in the STREAM construction (nonce =
//! a random per-file prefix, the chunk counter and a last-chunk flag), with the table name as
//! associated data. A chunk that is altered, dropped, reordered, moved to another table's file, or
//! a file cut short fails to open; so does a wrong key.

use std::io::{self, Read, Write};

use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use rand::RngCore;
use sha2::{Digest, Sha256};

use todo_db::error::{Error, Result};

/// Name of the cipher in manifests.
pub const CIPHER: &str = "chacha20poly1305-stream-64k";
const MAGIC: &[u8; 8] = b"TDBENC1\0";
const PLAIN_CHUNK: usize = 64 * 1024;
const TAG: usize = 16;

/// A 256-bit backup key. Never printed: `Debug` shows only its id.
#[derive(Clone)]
pub struct Key([u8; 32]);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key(id {})", self.id())
    }
}

impl Key {
    /// A new random key (from the operating system's generator).
    pub fn generate() -> Key {
        let mut k = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut k);
        Key(k)
    }

    /// Parses base64 of exactly 32 bytes.
    pub fn parse(text: &str) -> Result<Key> {
        let bytes = base64::engine::general_purpose::STANDARD.decode(text.trim()).map_err(|_| {
            Error::validation("TODO_DB_BACKUP_KEY", "is not base64 (make one with `todo-db backup keygen`)")
        })?;
        let key: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
            Error::validation(
                "TODO_DB_BACKUP_KEY",
                format!("is {} bytes; a key is 32 (`todo-db backup keygen`)", b.len()),
            )
        })?;
        Ok(Key(key))
    }

    /// The key from `TODO_DB_BACKUP_KEY`, if set.
    pub fn from_env() -> Result<Option<Key>> {
        match std::env::var("TODO_DB_BACKUP_KEY") {
            Ok(v) if !v.trim().is_empty() => Key::parse(&v).map(Some),
            _ => Ok(None),
        }
    }

    pub fn encode(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.0)
    }

    /// A short public fingerprint, stored in the manifest to tell a wrong key from damage.
    pub fn id(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"todo-db backup key id\0");
        h.update(self.0);
        hex::encode(&h.finalize()[..8])
    }

    fn cipher(&self) -> ChaCha20Poly1305 {
        ChaCha20Poly1305::new((&self.0).into())
    }
}

fn nonce(prefix: &[u8; 7], counter: u32, last: bool) -> Nonce {
    let mut n = [0u8; 12];
    n[..7].copy_from_slice(prefix);
    n[7..11].copy_from_slice(&counter.to_be_bytes());
    n[11] = u8::from(last);
    n.into()
}

/// Encrypts everything written to it; [`Sealer::finish`] seals the last chunk.
pub struct Sealer<W: Write> {
    inner: W,
    cipher: ChaCha20Poly1305,
    prefix: [u8; 7],
    counter: u32,
    buf: Vec<u8>,
    aad: Vec<u8>,
}

impl<W: Write> Sealer<W> {
    pub fn new(mut inner: W, key: &Key, table: &str) -> io::Result<Self> {
        let mut prefix = [0u8; 7];
        rand::rngs::OsRng.fill_bytes(&mut prefix);
        inner.write_all(MAGIC)?;
        inner.write_all(&prefix)?;
        Ok(Sealer {
            inner,
            cipher: key.cipher(),
            prefix,
            counter: 0,
            buf: Vec::with_capacity(PLAIN_CHUNK),
            aad: table.as_bytes().to_vec(),
        })
    }

    fn seal(&mut self, last: bool) -> io::Result<()> {
        let n = nonce(&self.prefix, self.counter, last);
        let sealed = self
            .cipher
            .encrypt(&n, Payload { msg: &self.buf, aad: &self.aad })
            .map_err(|_| io::Error::other("encryption failed"))?;
        self.inner.write_all(&sealed)?;
        self.counter = self.counter.checked_add(1).ok_or_else(|| io::Error::other("file too large to encrypt"))?;
        self.buf.clear();
        Ok(())
    }

    pub fn finish(mut self) -> io::Result<W> {
        self.seal(true)?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for Sealer<W> {
    fn write(&mut self, mut data: &[u8]) -> io::Result<usize> {
        let total = data.len();
        while !data.is_empty() {
            // A full chunk is sealed only once more data follows: the final chunk is marked last.
            if self.buf.len() == PLAIN_CHUNK {
                self.seal(false)?;
            }
            let take = (PLAIN_CHUNK - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
        Ok(total)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Decrypts a [`Sealer`]'s output, failing on any damage, truncation or a wrong key.
pub struct Opener<R: Read> {
    inner: R,
    cipher: ChaCha20Poly1305,
    prefix: [u8; 7],
    counter: u32,
    aad: Vec<u8>,
    plain: Vec<u8>,
    pos: usize,
    lookahead: Option<Vec<u8>>,
    done: bool,
}

impl<R: Read> Opener<R> {
    pub fn new(mut inner: R, key: &Key, table: &str) -> io::Result<Self> {
        let mut head = [0u8; 15];
        inner.read_exact(&mut head).map_err(|_| damaged("too short to be an encrypted backup file"))?;
        if &head[..8] != MAGIC {
            return Err(damaged("not an encrypted todo-db backup file"));
        }
        let mut prefix = [0u8; 7];
        prefix.copy_from_slice(&head[8..]);
        Ok(Opener {
            inner,
            cipher: key.cipher(),
            prefix,
            counter: 0,
            aad: table.as_bytes().to_vec(),
            plain: Vec::new(),
            pos: 0,
            lookahead: None,
            done: false,
        })
    }

    fn read_chunk(&mut self) -> io::Result<Vec<u8>> {
        let mut chunk = vec![0u8; PLAIN_CHUNK + TAG];
        let mut filled = 0;
        while filled < chunk.len() {
            match self.inner.read(&mut chunk[filled..])? {
                0 => break,
                n => filled += n,
            }
        }
        chunk.truncate(filled);
        Ok(chunk)
    }

    fn next_chunk(&mut self) -> io::Result<()> {
        let current = match self.lookahead.take() {
            Some(c) => c,
            None => self.read_chunk()?,
        };
        let last = if current.len() < PLAIN_CHUNK + TAG {
            true
        } else {
            let next = self.read_chunk()?;
            let last = next.is_empty();
            self.lookahead = (!last).then_some(next);
            last
        };
        let n = nonce(&self.prefix, self.counter, last);
        self.plain = self
            .cipher
            .decrypt(&n, Payload { msg: &current, aad: &self.aad })
            .map_err(|_| damaged("does not decrypt: wrong key, or the file was altered or cut short"))?;
        self.pos = 0;
        self.counter += 1;
        self.done = last;
        Ok(())
    }
}

impl<R: Read> Read for Opener<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.plain.len() {
            if self.done {
                return Ok(0);
            }
            self.next_chunk()?;
        }
        let n = (self.plain.len() - self.pos).min(out.len());
        out[..n].copy_from_slice(&self.plain[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

fn damaged(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seal(key: &Key, table: &str, data: &[u8]) -> Vec<u8> {
        let mut s = Sealer::new(Vec::new(), key, table).unwrap();
        s.write_all(data).unwrap();
        s.finish().unwrap()
    }

    fn open(key: &Key, table: &str, data: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        Opener::new(data, key, table)?.read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn round_trips_at_chunk_boundaries_and_refuses_damage() {
        let key = Key::generate();
        for len in [0, 1, PLAIN_CHUNK - 1, PLAIN_CHUNK, PLAIN_CHUNK + 1, 3 * PLAIN_CHUNK] {
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let sealed = seal(&key, "tasks", &data);
            assert_eq!(open(&key, "tasks", &sealed).unwrap(), data, "length {len}");
            assert!(open(&Key::generate(), "tasks", &sealed).is_err(), "wrong key, length {len}");
            assert!(open(&key, "users", &sealed).is_err(), "another table's file, length {len}");
            if len > PLAIN_CHUNK {
                // Cut exactly after a full chunk: the chunk was not sealed as the last one.
                assert!(open(&key, "tasks", &sealed[..15 + PLAIN_CHUNK + TAG]).is_err());
            }
            let mut flipped = sealed.clone();
            let at = 15 + (flipped.len() - 15) / 2;
            flipped[at] ^= 1;
            assert!(open(&key, "tasks", &flipped).is_err(), "flipped byte, length {len}");
        }
    }

    #[test]
    fn keys_parse_from_base64_and_never_print() {
        let key = Key::generate();
        let again = Key::parse(&key.encode()).unwrap();
        assert_eq!(key.id(), again.id());
        assert!(!format!("{key:?}").contains(&key.encode()));
        assert!(Key::parse("not base64!").unwrap_err().to_string().contains("TODO_DB_BACKUP_KEY"));
        assert!(Key::parse("AAAA").unwrap_err().to_string().contains("32"));
    }
}
