//! The compliance history's tamper evidence: an append-only list of records, each carrying the
//! hash of the one before (a hash chain), and checkpoints in which the hub signs the chain's
//! head, as transparency logs do. [`verify`] checks a history (as stored, or as exported) and
//! names the first record that was altered, removed, inserted or reordered; with the hub's
//! public key alone it checks the checkpoints too, so an auditor can verify an export offline.
//!
//! - [`query`]: filters, paging and reports by standard, category and control;
//! - [`sqlite`]: the embedded store;
//! - [`export`]: the file an auditor verifies offline, and the JSON of records.

use ring::signature::{
    self, ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair, UnparsedPublicKey,
};

pub mod api;
pub mod export;
pub mod postgres;
pub mod query;
pub mod sqlite;
pub mod store;
pub mod web;

/// Why the history could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistoryError {
    /// The store failed.
    #[error("the compliance history store failed: {0}")]
    Store(String),
    /// The checkpoint key is unusable.
    #[error("{0}")]
    Key(String),
    /// An exported history or a key file is malformed.
    #[error("{0}")]
    Format(String),
}

/// The DER prefix of a P-256 SubjectPublicKeyInfo, before its 65-byte uncompressed point.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// The hub's checkpoint signing key: ECDSA P-256, kept as PKCS#8.
pub struct CheckpointKey {
    pkcs8: Vec<u8>,
    public: Vec<u8>,
}

impl std::fmt::Debug for CheckpointKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointKey")
            .field("public", &public_key_pem(&self.public))
            .finish_non_exhaustive()
    }
}

impl CheckpointKey {
    /// A new key.
    pub fn generate() -> Result<CheckpointKey, HistoryError> {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
            .map_err(|e| HistoryError::Key(format!("cannot generate a checkpoint key: {e}")))?;
        CheckpointKey::from_pkcs8(pkcs8.as_ref())
    }

    /// The key from PKCS#8 DER.
    pub fn from_pkcs8(der: &[u8]) -> Result<CheckpointKey, HistoryError> {
        let pair = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_ASN1_SIGNING,
            der,
            &ring::rand::SystemRandom::new(),
        )
        .map_err(|e| {
            HistoryError::Key(format!(
                "the checkpoint key is not an ECDSA P-256 PKCS#8 key: {e}"
            ))
        })?;
        Ok(CheckpointKey {
            pkcs8: der.to_vec(),
            public: pair.public_key().as_ref().to_vec(),
        })
    }

    /// The key from PEM (`PRIVATE KEY`).
    pub fn from_pem(text: &str) -> Result<CheckpointKey, HistoryError> {
        let block = pem::parse(text)
            .map_err(|e| HistoryError::Key(format!("the checkpoint key is not PEM: {e}")))?;
        CheckpointKey::from_pkcs8(block.contents())
    }

    /// The key as PEM, to keep on disk.
    pub fn to_pem(&self) -> String {
        pem::encode(&pem::Pem::new("PRIVATE KEY", self.pkcs8.clone()))
    }

    /// PKCS#8 DER, for signing.
    pub fn pkcs8(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The public key: the uncompressed point [`verify`] takes.
    pub fn public_key(&self) -> &[u8] {
        &self.public
    }

    /// The public key as PEM (`PUBLIC KEY`, SubjectPublicKeyInfo), to hand to auditors.
    pub fn public_key_pem(&self) -> String {
        public_key_pem(&self.public)
    }
}

/// A P-256 point as a PEM SubjectPublicKeyInfo.
pub fn public_key_pem(point: &[u8]) -> String {
    let mut der = P256_SPKI_PREFIX.to_vec();
    der.extend(point);
    pem::encode(&pem::Pem::new("PUBLIC KEY", der))
}

/// The point of a PEM P-256 public key (`PUBLIC KEY`), as [`verify`] takes it.
pub fn parse_public_key_pem(text: &str) -> Result<Vec<u8>, HistoryError> {
    let block = pem::parse(text.trim())
        .map_err(|e| HistoryError::Format(format!("the public key is not PEM: {e}")))?;
    if block.tag() != "PUBLIC KEY" {
        return Err(HistoryError::Format(format!(
            "the PEM block is a {}, not a PUBLIC KEY",
            block.tag()
        )));
    }
    let der = block.contents();
    match der.strip_prefix(&P256_SPKI_PREFIX[..]) {
        Some(point) if point.len() == 65 && point[0] == 4 => Ok(point.to_vec()),
        _ => Err(HistoryError::Format(
            "the public key is not an ECDSA P-256 key".into(),
        )),
    }
}

/// The `prev` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What one record says: a change of compliance state of one template on one cluster.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Event {
    /// When the state changed, RFC 3339.
    pub time: String,
    /// The cluster.
    pub cluster: String,
    /// The root policy, `<namespace>/<name>`.
    pub policy: String,
    /// The replicated policy, `<namespace>.<name>`.
    pub replica: String,
    /// The template, `<kind>/<name>`.
    pub template: String,
    /// Compliant, NonCompliant, Pending.
    pub state: String,
    /// The template's message.
    pub message: String,
    /// The template's severity.
    pub severity: String,
    /// The policy's standards, categories and controls annotations at that time.
    pub standards: Vec<String>,
    /// Categories.
    pub categories: Vec<String>,
    /// Controls.
    pub controls: Vec<String>,
}

/// A record as stored: its position, the hash of the record before it, the event, and its own
/// hash over all of those.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Its position, from 1, without gaps.
    pub seq: u64,
    /// The hash of record `seq - 1` ([`GENESIS`] for the first).
    pub prev: String,
    /// What it records.
    pub event: Event,
    /// Hex SHA-256 of its canonical encoding.
    pub hash: String,
}

/// The unambiguous encoding that is hashed: every field length-prefixed, lists with their
/// count, so that no two different records encode alike.
fn canonical(seq: u64, prev: &str, e: &Event) -> Vec<u8> {
    let mut out = b"garrison-compliance-record-v1\n".to_vec();
    let mut put = |s: &str| {
        out.extend((s.len() as u64).to_be_bytes());
        out.extend(s.as_bytes());
    };
    put(&seq.to_string());
    put(prev);
    for s in [
        &e.time,
        &e.cluster,
        &e.policy,
        &e.replica,
        &e.template,
        &e.state,
        &e.message,
        &e.severity,
    ] {
        put(s);
    }
    for list in [&e.standards, &e.categories, &e.controls] {
        put(&list.len().to_string());
        for s in list {
            put(s);
        }
    }
    out
}

fn sha256_hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .fold(String::new(), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

impl Record {
    /// The record that follows `prev` (or the first, when `prev` is `None`).
    pub fn next(prev: Option<&Record>, event: Event) -> Record {
        let (seq, prev_hash) = match prev {
            Some(p) => (p.seq + 1, p.hash.clone()),
            None => (1, GENESIS.to_string()),
        };
        let hash = sha256_hex(&canonical(seq, &prev_hash, &event));
        Record {
            seq,
            prev: prev_hash,
            event,
            hash,
        }
    }

    /// The hash its content has.
    pub fn computed_hash(&self) -> String {
        sha256_hex(&canonical(self.seq, &self.prev, &self.event))
    }
}

/// The hub's signature over the chain's head at record `seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The last record it covers.
    pub seq: u64,
    /// That record's hash.
    pub head: String,
    /// When it was signed, RFC 3339.
    pub time: String,
    /// The hub's ECDSA P-256 signature (ASN.1 DER) over [`Checkpoint::signed_bytes`].
    pub signature: Vec<u8>,
}

impl Checkpoint {
    /// What the hub signs.
    pub fn signed_bytes(seq: u64, head: &str, time: &str) -> Vec<u8> {
        format!("garrison-compliance-checkpoint-v1\n{seq}\n{head}\n{time}\n").into_bytes()
    }

    /// Signs the head `record` with `key` (PKCS#8 ECDSA P-256) at `time`.
    pub fn sign(record: &Record, time: &str, key_pkcs8: &[u8]) -> Result<Checkpoint, String> {
        let rng = ring::rand::SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, key_pkcs8, &rng)
            .map_err(|e| format!("the checkpoint key is not an ECDSA P-256 PKCS#8 key: {e}"))?;
        let sig = key
            .sign(&rng, &Self::signed_bytes(record.seq, &record.hash, time))
            .map_err(|e| format!("signing failed: {e}"))?;
        Ok(Checkpoint {
            seq: record.seq,
            head: record.hash.clone(),
            time: time.to_string(),
            signature: sig.as_ref().to_vec(),
        })
    }
}

/// The first problem found in a history.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Finding {
    /// The record's content does not match its hash.
    #[error("record {0} was altered: its content does not match its hash")]
    Altered(u64),
    /// The record's successor does not link to it: it was altered and its hash recomputed.
    #[error("record {0} was altered: the record after it does not link to it")]
    AlteredRehashed(u64),
    /// Records are missing before this one.
    #[error("{}", if first == last { format!("record {first} was removed") } else { format!("records {first} to {last} were removed") })]
    Removed {
        /// The first missing position.
        first: u64,
        /// The last missing position.
        last: u64,
    },
    /// A record appears where it does not belong (a repeated or out-of-place position).
    #[error("record {found} appears at position {at}: records were reordered or inserted")]
    Reordered {
        /// Its own position.
        found: u64,
        /// Where it was found.
        at: u64,
    },
    /// A record was inserted: it has the expected position but does not link to the one before.
    #[error("record {0} was inserted: it does not link to the record before it")]
    Inserted(u64),
    /// A checkpoint's signature does not verify with the hub's key.
    #[error("the checkpoint at record {0} is not signed by the hub's key")]
    BadCheckpoint(u64),
    /// The records do not hash to what a checkpoint signed.
    #[error(
        "records up to {0} do not match the hub's signed checkpoint: the history was rewritten at or before it"
    )]
    Rewritten(u64),
    /// A checkpoint covers records the history does not have.
    #[error(
        "the checkpoint at record {seq} covers records missing from the history (it ends at {last})"
    )]
    Truncated {
        /// The checkpoint's record.
        seq: u64,
        /// The history's last record.
        last: u64,
    },
}

impl Finding {
    /// The first record it names.
    pub fn record(&self) -> u64 {
        match self {
            Finding::Altered(n)
            | Finding::AlteredRehashed(n)
            | Finding::Inserted(n)
            | Finding::BadCheckpoint(n)
            | Finding::Rewritten(n) => *n,
            Finding::Removed { first, .. } => *first,
            Finding::Reordered { at, .. } => *at,
            Finding::Truncated { last, .. } => *last + 1,
        }
    }
}

/// What a clean verification covered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Records checked.
    pub records: u64,
    /// Checkpoints checked.
    pub checkpoints: usize,
    /// The last record a checkpoint covers (records after it are chained but not yet signed).
    pub signed_through: u64,
}

/// Verification record by record, in constant memory: what a store streams through. It
/// answers whether everything it saw was clean; on the first anomaly the caller re-reads the
/// history and runs [`verify`], which names it.
#[derive(Debug)]
pub struct StreamingVerifier {
    prev: String,
    at: u64,
    heads: std::collections::HashMap<u64, String>,
    checkpoints: Vec<Checkpoint>,
    clean: bool,
}

impl StreamingVerifier {
    /// Starts over `checkpoints`, whose signatures are checked at [`StreamingVerifier::finish`].
    pub fn new(checkpoints: Vec<Checkpoint>) -> StreamingVerifier {
        StreamingVerifier {
            prev: GENESIS.to_string(),
            at: 0,
            heads: checkpoints
                .iter()
                .map(|c| (c.seq, c.head.clone()))
                .collect(),
            checkpoints,
            clean: true,
        }
    }

    /// Takes the next record in stored order; false once something is wrong.
    pub fn push(&mut self, r: &Record) -> bool {
        if !self.clean {
            return false;
        }
        self.at += 1;
        let ok = r.seq == self.at
            && r.prev == self.prev
            && r.computed_hash() == r.hash
            && self.heads.get(&r.seq).is_none_or(|h| *h == r.hash);
        self.prev = r.hash.clone();
        self.clean = ok;
        ok
    }

    /// The outcome if everything was clean (`None` when the caller must run [`verify`]).
    pub fn finish(self, public_key: &[u8]) -> Option<Result<Verified, Finding>> {
        if !self.clean {
            return None;
        }
        let key = UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_ASN1, public_key);
        let mut signed_through = 0;
        for c in &self.checkpoints {
            if key
                .verify(
                    &Checkpoint::signed_bytes(c.seq, &c.head, &c.time),
                    &c.signature,
                )
                .is_err()
            {
                return Some(Err(Finding::BadCheckpoint(c.seq)));
            }
            if c.seq > self.at {
                return Some(Err(Finding::Truncated {
                    seq: c.seq,
                    last: self.at,
                }));
            }
            signed_through = signed_through.max(c.seq);
        }
        Some(Ok(Verified {
            records: self.at,
            checkpoints: self.checkpoints.len(),
            signed_through,
        }))
    }
}

/// `checkpoints` and `anchor`, a checkpoint remembered outside the store (the newest the hub
/// signed, or one an auditor kept from an earlier export). Verified like the others, it
/// catches what the store's own checkpoints cannot: the newest records removed together with
/// the checkpoints that covered them, or the history rolled back to an earlier copy.
pub fn with_anchor(
    mut checkpoints: Vec<Checkpoint>,
    anchor: Option<Checkpoint>,
) -> Vec<Checkpoint> {
    if let Some(a) = anchor
        && !checkpoints.contains(&a)
    {
        checkpoints.push(a);
        checkpoints.sort_by_key(|c| c.seq);
    }
    checkpoints
}

/// Checks `records` (in stored order) and `checkpoints` against the hub's public key (an
/// uncompressed P-256 point, as in its SubjectPublicKeyInfo). Returns the first problem.
pub fn verify(
    records: &[Record],
    checkpoints: &[Checkpoint],
    public_key: &[u8],
) -> Result<Verified, Finding> {
    let mut prev = GENESIS.to_string();
    // Where each hash is, to tell a record renumbered (moved, or pushed along by an insertion)
    // from one whose content changed.
    let seq_of: std::collections::HashMap<&str, u64> =
        records.iter().map(|r| (r.hash.as_str(), r.seq)).collect();
    for (i, r) in records.iter().enumerate() {
        let at = i as u64 + 1;
        if r.computed_hash() != r.hash {
            // The number it had: after its predecessor's, or (that one renumbered too) any
            // other; tried only here, at the first problem.
            let hint = if r.prev == GENESIS {
                Some(1)
            } else {
                seq_of.get(r.prev.as_str()).and_then(|s| s.checked_add(1))
            };
            // Only positions the history could have had: a huge number costs nothing.
            let last = records.len() as u64 + 1;
            let original = hint
                .into_iter()
                .chain(1..=last)
                .filter(|s| *s != r.seq)
                .find(|s| {
                    Record {
                        seq: *s,
                        ..r.clone()
                    }
                    .computed_hash()
                        == r.hash
                });
            if let Some(original) = original {
                {
                    // Two records claim the same predecessor: the one before was slipped in.
                    if i > 0 && records[i - 1].prev == r.prev {
                        return Err(Finding::Inserted(records[i - 1].seq));
                    }
                    return Err(Finding::Reordered {
                        found: original,
                        at: r.seq,
                    });
                }
            }
            return Err(Finding::Altered(r.seq));
        }
        if r.seq > at {
            // The missing position further on means moved, not removed.
            if records[i + 1..].iter().any(|later| later.seq == at) {
                return Err(Finding::Reordered { found: r.seq, at });
            }
            return Err(Finding::Removed {
                first: at,
                last: r.seq - 1,
            });
        }
        if r.seq < at {
            return Err(Finding::Reordered { found: r.seq, at });
        }
        if r.prev != prev {
            // The record before was rehashed after a change, or this one does not belong.
            return Err(if i > 0 && records[i - 1].hash != r.prev {
                if records
                    .iter()
                    .skip(i + 1)
                    .any(|later| later.prev == records[i - 1].hash)
                {
                    Finding::Inserted(r.seq)
                } else {
                    Finding::AlteredRehashed(r.seq - 1)
                }
            } else {
                Finding::Inserted(r.seq)
            });
        }
        prev = r.hash.clone();
    }
    let key = UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_ASN1, public_key);
    let last = records.last().map_or(0, |r| r.seq);
    let mut signed_through = 0;
    for c in checkpoints {
        if key
            .verify(
                &Checkpoint::signed_bytes(c.seq, &c.head, &c.time),
                &c.signature,
            )
            .is_err()
        {
            return Err(Finding::BadCheckpoint(c.seq));
        }
        if c.seq > last {
            return Err(Finding::Truncated { seq: c.seq, last });
        }
        let at = c.seq.checked_sub(1).and_then(|i| records.get(i as usize));
        if at.map(|r| r.hash.as_str()) != Some(c.head.as_str()) {
            return Err(Finding::Rewritten(c.seq));
        }
        signed_through = signed_through.max(c.seq);
    }
    Ok(Verified {
        records: last,
        checkpoints: checkpoints.len(),
        signed_through,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::KeyPair;

    fn event(i: u64) -> Event {
        Event {
            time: format!("2026-03-03T10:{:02}:00Z", i % 60),
            cluster: format!("c{}", i % 3),
            policy: "policies/ac-2".into(),
            replica: "policies.ac-2".into(),
            template: "ConfigurationPolicy/accounts".into(),
            state: if i.is_multiple_of(2) {
                "Compliant"
            } else {
                "NonCompliant"
            }
            .into(),
            message: format!("change {i}"),
            severity: "high".into(),
            standards: vec!["NIST SP 800-53".into()],
            categories: vec!["AC Access Control".into()],
            controls: vec!["AC-2".into()],
        }
    }

    fn history(n: u64) -> Vec<Record> {
        let mut out: Vec<Record> = vec![];
        for i in 1..=n {
            let r = Record::next(out.last(), event(i));
            out.push(r);
        }
        out
    }

    fn key() -> (Vec<u8>, Vec<u8>) {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        (pkcs8.as_ref().to_vec(), pair.public_key().as_ref().to_vec())
    }

    #[test]
    fn an_untouched_history_verifies_with_its_checkpoints() {
        let (private, public) = key();
        let h = history(10);
        let cps = vec![
            Checkpoint::sign(&h[4], "t1", &private).unwrap(),
            Checkpoint::sign(&h[9], "t2", &private).unwrap(),
        ];
        assert_eq!(
            verify(&h, &cps, &public),
            Ok(Verified {
                records: 10,
                checkpoints: 2,
                signed_through: 10
            })
        );
    }

    #[test]
    fn each_kind_of_tampering_is_named_at_the_first_record_it_touches() {
        let (private, public) = key();
        let h = history(10);
        let cps = vec![Checkpoint::sign(&h[9], "t", &private).unwrap()];
        // An edited message.
        let mut altered = h.clone();
        altered[3].event.message = "nothing to see".into();
        assert_eq!(verify(&altered, &cps, &public), Err(Finding::Altered(4)));
        // Edited and rehashed: the next record no longer links to it.
        let mut rehashed = h.clone();
        rehashed[3].event.state = "NonCompliant".into();
        rehashed[3].hash = rehashed[3].computed_hash();
        assert_eq!(
            verify(&rehashed, &cps, &public),
            Err(Finding::AlteredRehashed(4))
        );
        // Removed.
        let mut removed = h.clone();
        removed.drain(4..6);
        assert_eq!(
            verify(&removed, &cps, &public),
            Err(Finding::Removed { first: 5, last: 6 })
        );
        // Reordered.
        let mut reordered = h.clone();
        reordered.swap(6, 7);
        assert_eq!(
            verify(&reordered, &cps, &public),
            Err(Finding::Reordered { found: 8, at: 7 })
        );
        // Inserted: a forged record with the expected position, chained from nowhere.
        let mut inserted = h[..5].to_vec();
        let forged = Record::next(Some(&h[2]), event(99));
        let mut forged = Record { seq: 6, ..forged };
        forged.hash = forged.computed_hash();
        inserted.push(forged);
        inserted.extend(h[5..].iter().cloned());
        assert_eq!(verify(&inserted, &cps, &public), Err(Finding::Inserted(6)));
        // The whole tail rewritten consistently: only the signed checkpoint tells.
        let mut rewritten = h[..3].to_vec();
        for i in 4..=10 {
            let r = Record::next(rewritten.last(), event(i + 100));
            rewritten.push(r);
        }
        assert_eq!(
            verify(&rewritten, &cps, &public),
            Err(Finding::Rewritten(10))
        );
        // A history cut short after its last checkpoint.
        assert_eq!(
            verify(&h[..8], &cps, &public),
            Err(Finding::Truncated { seq: 10, last: 8 })
        );
    }

    #[test]
    fn renumbering_in_a_store_is_named_as_reordering_or_insertion() {
        let (private, public) = key();
        let h = history(6);
        let cps = vec![Checkpoint::sign(&h[5], "t", &private).unwrap()];
        // Records 3 and 4 swapped by swapping their numbers, as an UPDATE of the key would.
        let mut swapped = h.clone();
        swapped.swap(2, 3);
        swapped[2].seq = 3;
        swapped[3].seq = 4;
        assert_eq!(
            verify(&swapped, &cps, &public),
            Err(Finding::Reordered { found: 4, at: 3 })
        );
        // A well-formed record slipped in at 3, the rest renumbered to make room.
        let mut inserted = h[..2].to_vec();
        inserted.push(Record::next(Some(&h[1]), event(77)));
        for r in &h[2..] {
            inserted.push(Record {
                seq: r.seq + 1,
                ..r.clone()
            });
        }
        assert_eq!(verify(&inserted, &cps, &public), Err(Finding::Inserted(3)));
    }

    #[test]
    fn the_streaming_verifier_agrees_on_clean_histories_and_defers_on_dirty_ones() {
        let (private, public) = key();
        let h = history(8);
        let cps = vec![Checkpoint::sign(&h[5], "t", &private).unwrap()];
        let mut v = StreamingVerifier::new(cps.clone());
        assert!(h.iter().all(|r| v.push(r)));
        assert_eq!(v.finish(&public), Some(verify(&h, &cps, &public)));
        let mut altered = h.clone();
        altered[2].event.message = "x".into();
        let mut v = StreamingVerifier::new(cps.clone());
        assert!(!altered.iter().all(|r| v.push(r)));
        assert_eq!(v.finish(&public), None);
        // A consistent rewrite is caught at the checkpoint's record.
        let mut rewritten = h[..3].to_vec();
        for i in 4..=8 {
            let r = Record::next(rewritten.last(), event(i + 50));
            rewritten.push(r);
        }
        let mut v = StreamingVerifier::new(cps.clone());
        assert!(!rewritten.iter().all(|r| v.push(r)));
        let (_, other) = key();
        let mut v = StreamingVerifier::new(cps);
        assert!(h.iter().all(|r| v.push(r)));
        assert_eq!(v.finish(&other), Some(Err(Finding::BadCheckpoint(6))));
    }

    #[test]
    fn checkpoints_need_the_hubs_key() {
        let (private, public) = key();
        let (_, other_public) = key();
        let h = history(3);
        let cp = Checkpoint::sign(&h[2], "t", &private).unwrap();
        assert_eq!(
            verify(&h, std::slice::from_ref(&cp), &public).map(|v| v.signed_through),
            Ok(3)
        );
        assert_eq!(
            verify(&h, std::slice::from_ref(&cp), &other_public),
            Err(Finding::BadCheckpoint(3))
        );
        // A signed checkpoint whose time was changed no longer verifies.
        let mut moved = cp;
        moved.time = "later".into();
        assert_eq!(
            verify(&h, &[moved], &public),
            Err(Finding::BadCheckpoint(3))
        );
    }

    #[test]
    fn fields_cannot_be_shifted_between_each_other() {
        let a = Event {
            cluster: "ab".into(),
            policy: "c".into(),
            ..Default::default()
        };
        let b = Event {
            cluster: "a".into(),
            policy: "bc".into(),
            ..Default::default()
        };
        assert_ne!(Record::next(None, a).hash, Record::next(None, b).hash);
    }

    #[test]
    fn a_remembered_checkpoint_catches_the_newest_records_removed_with_their_checkpoints() {
        let key = CheckpointKey::generate().unwrap();
        let public = key.public_key().to_vec();
        let h = history(10);
        let sign = |r: &Record| Checkpoint::sign(r, "2026-03-03T10:00:00Z", key.pkcs8()).unwrap();
        let (cp5, cp10) = (sign(&h[4]), sign(&h[9]));
        // Records 9 and 10 gone with the checkpoint at 10: what is left agrees with itself.
        let cut = &h[..8];
        assert!(verify(cut, std::slice::from_ref(&cp5), &public).is_ok());
        let anchored = with_anchor(vec![cp5.clone()], Some(cp10.clone()));
        assert_eq!(
            verify(cut, &anchored, &public),
            Err(Finding::Truncated { seq: 10, last: 8 })
        );
        // Rolled back to 8, then grown again: another record 10 than the one signed.
        let mut regrown = cut.to_vec();
        for _ in 0..2 {
            let next = Record::next(
                regrown.last(),
                Event {
                    state: "Compliant".into(),
                    message: "after the rollback".into(),
                    ..Default::default()
                },
            );
            regrown.push(next);
        }
        assert_eq!(
            verify(&regrown, &anchored, &public),
            Err(Finding::Rewritten(10))
        );
        // The untouched history passes with it; an anchor the store holds too counts once.
        assert!(verify(&h, &anchored, &public).is_ok());
        assert_eq!(with_anchor(vec![cp10.clone()], Some(cp10)).len(), 1);
        // A forged anchor does not verify.
        let mut forged = sign(&h[9]);
        forged.seq = 11;
        assert_eq!(
            verify(&h, &with_anchor(vec![cp5], Some(forged)), &public),
            Err(Finding::BadCheckpoint(11))
        );
    }
}
