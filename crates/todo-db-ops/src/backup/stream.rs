//! Table files: zstd with frame checksums, hashed as they are written and read.

use std::io::{BufReader, Read, Write};

use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::*;

/// Compresses every chunk from `recv` into `out` (zstd level 3, with frame checksums).
pub(super) fn compress<W: Write>(out: W, recv: std::sync::mpsc::Receiver<Bytes>) -> std::io::Result<W> {
    let mut z = zstd::stream::Encoder::new(out, 3)?;
    z.include_checksum(true)?;
    for chunk in recv {
        z.write_all(&chunk)?;
    }
    z.finish()
}

/// A reader of one table file's COPY data: decrypted when `key` is set, then decompressed.
pub(super) fn decompressor<'r, R: Read + 'r>(
    file: R,
    key: Option<&Key>,
    table: &str,
) -> std::io::Result<zstd::stream::Decoder<'r, BufReader<Box<dyn Read + 'r>>>> {
    let source: Box<dyn Read + 'r> = match key {
        Some(k) => Box::new(crypt::Opener::new(file, k, table)?),
        None => Box::new(file),
    };
    zstd::stream::Decoder::new(source)
}

/// A writer that hashes and counts what passes through it.
pub(super) struct HashingWriter<W> {
    pub(super) inner: W,
    pub(super) hash: Sha256,
    pub(super) bytes: u64,
}

impl<W: Write> HashingWriter<W> {
    pub(super) fn new(inner: W) -> Self {
        HashingWriter { inner, hash: Sha256::new(), bytes: 0 }
    }

    pub(super) fn finish(mut self) -> (W, u64, String) {
        let _ = self.inner.flush();
        (self.inner, self.bytes, hex::encode(self.hash.finalize()))
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that hashes and counts what passes through it.
pub(super) struct HashingReader<R> {
    pub(super) inner: R,
    pub(super) hash: Sha256,
    pub(super) bytes: u64,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}
