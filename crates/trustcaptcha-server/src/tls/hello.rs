//! The client's TLS ClientHello, read off the connection before the TLS library sees it, and
//! its JA4 fingerprint (FoxIO's JA4, the TLS client part: BSD-3-Clause specification).
//!
//! JA4 is `a_b_c`: `a` names the protocol (`t`: TLS over TCP), the highest version offered
//! (`13`), whether a server name was sent (`d`) or not (`i`), the number of cipher suites and of
//! extensions (two digits each) and the first and last character of the first ALPN protocol
//! (`h2`; `00` without ALPN); `b` is the first 12 hex digits of the SHA-256 of the cipher suites
//! (four lower-case hex digits each, sorted, comma-separated); `c` the same of the sorted
//! extensions without SNI and ALPN, then `_` and the signature algorithms in the order sent.
//! GREASE values (RFC 8701) are left out everywhere. The cipher suites a TLS library offers are
//! its own: a browser's differ from Node's, Python's, Go's, curl's or Java's.

use std::fmt;

use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt as _};

/// The most bytes of handshake records read for one ClientHello: a browser's is 2 KiB even with
/// post-quantum key shares; anything longer is not fingerprinted.
pub(crate) const MAX_HELLO_BYTES: usize = 16 * 1024;

/// A record's header: type, version, length.
const RECORD_HEADER: usize = 5;

/// Reads the records that carry the ClientHello from `stream`: at least one whole record, and
/// more while the handshake message they start is longer. Returns the bytes read (to be handed
/// to the TLS library unchanged) whatever they hold; reading stops at the first record that is
/// not a handshake record, or at [`MAX_HELLO_BYTES`].
///
/// # Errors
///
/// When the stream fails or ends before a whole record arrived.
pub(crate) async fn read_records(
    stream: &mut (impl AsyncRead + Unpin),
) -> std::io::Result<Vec<u8>> {
    let mut read = Vec::with_capacity(2048);
    let mut handshake = 0usize;
    let mut needed = None;
    loop {
        let start = read.len();
        read.resize(start + RECORD_HEADER, 0);
        stream.read_exact(&mut read[start..]).await?;
        let header = &read[start..];
        let length = usize::from(u16::from_be_bytes([header[3], header[4]]));
        if header[0] != 0x16 || read.len() + length > MAX_HELLO_BYTES + RECORD_HEADER {
            // Not a handshake, or too long: the TLS library will say what it thinks of it.
            return Ok(read);
        }
        let body = read.len();
        read.resize(body + length, 0);
        stream.read_exact(&mut read[body..]).await?;
        handshake += length;
        if needed.is_none() && length >= 4 {
            let message = &read[body..];
            needed = Some(
                4 + (usize::from(message[1]) << 16
                    | usize::from(message[2]) << 8
                    | usize::from(message[3])),
            );
        }
        match needed {
            Some(needed) if handshake < needed && read.len() < MAX_HELLO_BYTES => {}
            _ => return Ok(read),
        }
    }
}

/// A JA4 fingerprint: computed from a ClientHello, or read from a trusted proxy's header.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Ja4(String);

impl fmt::Display for Ja4 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Ja4 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ja4({})", self.0)
    }
}

impl Ja4 {
    /// The fingerprint as text (`t13d1516h2_8daaf6152771_02713d6af862`).
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// The fingerprint of the ClientHello in `records` (as [`read_records`] returns them), or
    /// `None` when they hold none.
    #[must_use]
    pub(crate) fn of_records(records: &[u8]) -> Option<Ja4> {
        // The handshake message, from the fragments of the records that carry it.
        let mut message = Vec::with_capacity(records.len());
        let mut rest = records;
        while rest.len() >= RECORD_HEADER && rest[0] == 0x16 {
            let length = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
            let fragment = rest.get(RECORD_HEADER..RECORD_HEADER + length)?;
            message.extend_from_slice(fragment);
            rest = &rest[RECORD_HEADER + length..];
        }
        let mut reader = Reader(&message);
        if reader.u8()? != 1 {
            return None; // not a ClientHello
        }
        let length = usize::try_from(reader.u24()?).ok()?;
        let hello = ClientHello::read(&mut Reader(reader.take(length)?))?;
        Some(hello.ja4())
    }

    /// A fingerprint a trusted proxy wrote, when it has JA4's form (`t13d1516h2_` and two 12
    /// digit hex hashes).
    #[must_use]
    pub(crate) fn parse(text: &str) -> Option<Ja4> {
        let text = text.trim();
        let mut parts = text.split('_');
        let (a, b, c) = (parts.next()?, parts.next()?, parts.next()?);
        let hash = |part: &str| part.len() == 12 && part.bytes().all(|b| b.is_ascii_hexdigit());
        let a_ok = a.len() == 10 && a.is_ascii() && matches!(&a[..1], "t" | "q" | "d");
        (parts.next().is_none() && a_ok && hash(b) && hash(c))
            .then(|| Ja4(text.to_ascii_lowercase()))
    }

    /// The highest TLS version offered (`13`, `12`, …).
    pub(crate) fn version(&self) -> &str {
        &self.0[1..3]
    }

    /// The first and last character of the first ALPN protocol offered (`h2`), `00` for none.
    pub(crate) fn alpn(&self) -> &str {
        &self.0[8..10]
    }

    /// The hash of the cipher suites offered: the TLS library's own list.
    pub(crate) fn ciphers(&self) -> &str {
        &self.0[11..23]
    }
}

/// What JA4 reads of a ClientHello.
#[derive(Debug, Default)]
struct ClientHello {
    legacy_version: u16,
    ciphers: Vec<u16>,
    extensions: Vec<u16>,
    server_name: bool,
    first_alpn: Option<Vec<u8>>,
    versions: Vec<u16>,
    signature_algorithms: Vec<u16>,
}

impl ClientHello {
    /// Reads a ClientHello's body.
    fn read(body: &mut Reader<'_>) -> Option<ClientHello> {
        let mut hello = ClientHello {
            legacy_version: body.u16()?,
            ..ClientHello::default()
        };
        body.take(32)?; // random
        body.list8()?; // session id
        let mut ciphers = body.list16()?;
        while let Some(cipher) = ciphers.u16() {
            hello.ciphers.push(cipher);
        }
        body.list8()?; // compression methods
        let Some(length) = body.u16() else {
            return Some(hello); // no extensions at all
        };
        let mut extensions = Reader(body.take(usize::from(length))?);
        while let Some(kind) = extensions.u16() {
            let mut data = extensions.list16()?;
            hello.extensions.push(kind);
            match kind {
                0x0000 => hello.server_name = true,
                0x0010 => {
                    let mut list = data.list16()?;
                    hello.first_alpn = Some(list.list8()?.0.to_vec());
                }
                0x002b => {
                    let mut list = data.list8()?;
                    while let Some(version) = list.u16() {
                        hello.versions.push(version);
                    }
                }
                0x000d => {
                    let mut list = data.list16()?;
                    while let Some(algorithm) = list.u16() {
                        hello.signature_algorithms.push(algorithm);
                    }
                }
                _ => {}
            }
        }
        Some(hello)
    }

    fn ja4(&self) -> Ja4 {
        let version = self
            .versions
            .iter()
            .copied()
            .filter(|v| !grease(*v))
            .max()
            .unwrap_or(self.legacy_version);
        let version = match version {
            0x0304 => "13",
            0x0303 => "12",
            0x0302 => "11",
            0x0301 => "10",
            0x0300 => "s3",
            _ => "00",
        };
        let sni = if self.server_name { 'd' } else { 'i' };
        let ciphers: Vec<u16> = self
            .ciphers
            .iter()
            .copied()
            .filter(|c| !grease(*c))
            .collect();
        let extensions: Vec<u16> = self
            .extensions
            .iter()
            .copied()
            .filter(|e| !grease(*e))
            .collect();
        let alpn = match self.first_alpn.as_deref() {
            Some([first, .., last] | [first @ last]) => {
                if first.is_ascii_alphanumeric() && last.is_ascii_alphanumeric() {
                    format!("{}{}", char::from(*first), char::from(*last))
                } else {
                    // JA4's rule for a protocol name that is not text: the first and last
                    // hex digit of its first and last bytes.
                    let hex = format!("{first:02x}{last:02x}");
                    format!("{}{}", &hex[..1], &hex[3..])
                }
            }
            _ => "00".to_owned(),
        };
        let mut sorted = ciphers.clone();
        sorted.sort_unstable();
        let b = truncated_hash(&hex_list(&sorted));
        let mut kept: Vec<u16> = extensions
            .iter()
            .copied()
            .filter(|e| !matches!(e, 0x0000 | 0x0010))
            .collect();
        kept.sort_unstable();
        let algorithms: Vec<u16> = self
            .signature_algorithms
            .iter()
            .copied()
            .filter(|a| !grease(*a))
            .collect();
        let mut c = hex_list(&kept);
        if !algorithms.is_empty() {
            c.push('_');
            c.push_str(&hex_list(&algorithms));
        }
        let c = if kept.is_empty() {
            "000000000000".to_owned()
        } else {
            truncated_hash(&c)
        };
        Ja4(format!(
            "t{version}{sni}{:02}{:02}{alpn}_{b}_{c}",
            ciphers.len().min(99),
            extensions.len().min(99)
        ))
    }
}

/// Whether `value` is a GREASE value (RFC 8701: `0x?a?a` with both bytes equal).
fn grease(value: u16) -> bool {
    value & 0x0f0f == 0x0a0a && value >> 8 == value & 0xff
}

/// `0a0b,0c0d` of the values.
fn hex_list(values: &[u16]) -> String {
    values
        .iter()
        .map(|v| format!("{v:04x}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The first 12 hex digits of the SHA-256 of `text`; twelve zeros for an empty list.
fn truncated_hash(text: &str) -> String {
    if text.is_empty() {
        return "000000000000".to_owned();
    }
    hex::encode(&Sha256::digest(text.as_bytes())[..6])
}

/// A bounds-checked reader of big-endian fields.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, count: usize) -> Option<&'a [u8]> {
        let (taken, rest) = self.0.split_at_checked(count)?;
        self.0 = rest;
        Some(taken)
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn u16(&mut self) -> Option<u16> {
        let bytes = self.take(2)?;
        Some(u16::from_be_bytes([bytes[0], bytes[1]]))
    }

    /// The contents of a list behind a one-byte length.
    fn list8(&mut self) -> Option<Reader<'a>> {
        let length = usize::from(self.u8()?);
        Some(Reader(self.take(length)?))
    }

    /// The contents of a list behind a two-byte length.
    fn list16(&mut self) -> Option<Reader<'a>> {
        let length = usize::from(self.u16()?);
        Some(Reader(self.take(length)?))
    }

    fn u24(&mut self) -> Option<u32> {
        let bytes = self.take(3)?;
        Some(u32::from_be_bytes([0, bytes[0], bytes[1], bytes[2]]))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A ClientHello record with these cipher suites and extensions (`(type, data)`), in order.
    pub(crate) fn client_hello(ciphers: &[u16], extensions: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let mut body = vec![0x03, 0x03];
        body.extend([7u8; 32]);
        body.push(32);
        body.extend([9u8; 32]);
        body.extend(
            u16::try_from(ciphers.len() * 2)
                .expect("short")
                .to_be_bytes(),
        );
        for cipher in ciphers {
            body.extend(cipher.to_be_bytes());
        }
        body.extend([1, 0]);
        let mut list = Vec::new();
        for (kind, data) in extensions {
            list.extend(kind.to_be_bytes());
            list.extend(u16::try_from(data.len()).expect("short").to_be_bytes());
            list.extend(data);
        }
        body.extend(u16::try_from(list.len()).expect("short").to_be_bytes());
        body.extend(list);
        let mut message = vec![1];
        message.extend(&u32::try_from(body.len()).expect("short").to_be_bytes()[1..]);
        message.extend(body);
        let mut record = vec![0x16, 0x03, 0x01];
        record.extend(u16::try_from(message.len()).expect("short").to_be_bytes());
        record.extend(message);
        record
    }

    /// `u16` values of a comma-separated hex list.
    fn values(list: &str) -> Vec<u16> {
        list.split(',')
            .map(|v| u16::from_str_radix(v, 16).expect("hex"))
            .collect()
    }

    /// An extension list of `u16`s behind a length of `width` bytes.
    fn u16_list(width: usize, items: &[u16]) -> Vec<u8> {
        let bytes: Vec<u8> = items.iter().flat_map(|v| v.to_be_bytes()).collect();
        let mut data = bytes.len().to_be_bytes()[8 - width..].to_vec();
        data.extend(bytes);
        data
    }

    /// Chrome 143's ClientHello as a public fingerprinting service recorded it (its original
    /// order, with GREASE added where Chrome puts it), and the JA4 that service computed.
    pub(crate) fn chrome() -> Vec<u8> {
        let mut ciphers = vec![0x4a4a];
        ciphers.extend(values(
            "1301,1302,1303,c02b,c02f,c02c,c030,cca9,cca8,c013,c014,009c,009d,002f,0035",
        ));
        let algorithms = values("0403,0804,0401,0503,0805,0501,0806,0601");
        let mut alpn = vec![0, 12, 2];
        alpn.extend(b"h2");
        alpn.push(8);
        alpn.extend(b"http/1.1");
        let mut server_name = vec![0, 14, 0, 0, 11];
        server_name.extend(b"example.com");
        let extensions: Vec<(u16, Vec<u8>)> = [0x2a2a]
            .into_iter()
            .chain(values(
                "002d,0033,0010,fe0d,0017,44cd,0000,000b,000a,002b,ff01,0023,0012,0005,000d,001b",
            ))
            .chain([0x3a3a])
            .map(|kind| {
                let data = match kind {
                    0x0010 => alpn.clone(),
                    0x0000 => server_name.clone(),
                    0x002b => {
                        let mut data = vec![6];
                        data.extend([0x5a, 0x5a, 0x03, 0x04, 0x03, 0x03]);
                        data
                    }
                    0x000d => u16_list(2, &algorithms),
                    _ => vec![0],
                };
                (kind, data)
            })
            .collect();
        client_hello(&ciphers, &extensions)
    }

    #[test]
    fn a_recorded_chrome_hello_gives_the_published_ja4() {
        let ja4 = Ja4::of_records(&chrome()).expect("a hello");
        assert_eq!(ja4.to_string(), "t13d1516h2_8daaf6152771_d8a2da3f94cd");
        assert_eq!(
            (ja4.version(), ja4.alpn(), ja4.ciphers()),
            ("13", "h2", "8daaf6152771")
        );
    }

    #[test]
    fn a_hello_split_over_records_is_read_whole() {
        let whole = chrome();
        let message = &whole[5..];
        let (first, second) = message.split_at(100);
        let mut split = Vec::new();
        for part in [first, second] {
            split.extend([0x16, 0x03, 0x01]);
            split.extend(u16::try_from(part.len()).expect("short").to_be_bytes());
            split.extend(part);
        }
        assert_eq!(Ja4::of_records(&split), Ja4::of_records(&whole));
        let read = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(read_records(&mut &split[..]))
            .expect("read");
        assert_eq!(read, split, "both records are read, nothing after them");
    }

    /// ClientHellos of other TLS libraries, recorded from their clients (the fuzz corpus).
    #[test]
    fn other_libraries_hellos_are_read_and_are_not_chromiums() {
        let corpus =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/client_hello");
        for client in ["python-ssl", "node-https", "openssl-s_client"] {
            let records = std::fs::read(corpus.join(client)).expect("recorded");
            let ja4 = Ja4::of_records(&records).expect(client);
            assert_eq!(ja4.version(), "13", "{client}: {ja4}");
            assert_ne!(ja4.ciphers(), "8daaf6152771", "{client}: {ja4}");
        }
    }

    #[test]
    fn a_bare_hello_has_no_alpn_and_no_name() {
        let ja4 = Ja4::of_records(&client_hello(&[0x1301, 0x0a0a], &[])).expect("a hello");
        assert_eq!(ja4.to_string().split('_').next(), Some("t12i010000"));
        assert!(ja4.to_string().ends_with("_000000000000"));
    }

    #[test]
    fn what_is_not_a_hello_has_no_fingerprint() {
        assert_eq!(Ja4::of_records(b"GET / HTTP/1.1\r\n\r\n"), None);
        assert_eq!(Ja4::of_records(&[]), None);
        let mut cut = chrome();
        cut.truncate(60);
        assert_eq!(Ja4::of_records(&cut), None);
    }

    #[test]
    fn a_proxys_header_is_read_when_it_has_ja4s_form() {
        let ja4 = Ja4::parse(" t13d1516h2_8daaf6152771_D8A2DA3F94CD ").expect("form");
        assert_eq!(ja4.to_string(), "t13d1516h2_8daaf6152771_d8a2da3f94cd");
        for wrong in [
            "",
            "t13d1516h2",
            "t13d1516h2_8daaf6152771",
            "x13d1516h2_8daaf6152771_d8a2da3f94cd",
            "t13d1516h2_8daaf615277z_d8a2da3f94cd",
            "t13d1516h2_8daaf6152771_d8a2da3f94cd_1",
            "t13d1516h2é_8daaf6152771_d8a2da3f94c",
        ] {
            assert_eq!(Ja4::parse(wrong), None, "{wrong}");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_are_read_without_a_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            let _ = Ja4::of_records(&bytes);
            let mut record = vec![0x16, 0x03, 0x01];
            record.extend(u16::try_from(bytes.len()).expect("short").to_be_bytes());
            record.extend(&bytes);
            let _ = Ja4::of_records(&record);
        }
    }
}
