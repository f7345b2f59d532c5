//! The widget's proof-of-work: SHA-256 over a task's decoded input followed by the ASCII nonce
//! `tcn<counter>` must start with at least `difficulty` zero bits (see `docs/protocol.md`).

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::protocol::Answer;

/// Random bytes per task input (24 characters of standard base64).
pub const INPUT_LEN: usize = 16;

/// The longest nonce accepted; the widget's longest possible one is 19 bytes.
const MAX_NONCE_LEN: usize = 32;

/// One task's input.
pub type TaskInput = [u8; INPUT_LEN];

/// A challenge's task inputs, kept as what they are made from: a random seed and a count. Input
/// `i` is the first 16 bytes of SHA-256(seed ‖ `i` as four big-endian bytes), as unpredictable
/// as the seed, which never leaves the server. A pending verification holds 17 bytes for its
/// tasks, not 16 per task on the heap. (Verifications stored by earlier versions listed their
/// inputs; those are still read.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tasks(Inputs);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
enum Inputs {
    Seeded { seed: [u8; 16], count: u8 },
    Listed(Box<[TaskInput]>),
}

impl Tasks {
    /// Fresh tasks: `count` inputs from a new random seed.
    #[must_use]
    pub fn generate(count: u8) -> Self {
        Tasks::seeded(rand::random(), count)
    }

    /// `count` tasks from `seed` (always the same inputs for the same seed).
    #[must_use]
    pub fn seeded(seed: [u8; 16], count: u8) -> Self {
        Tasks(Inputs::Seeded { seed, count })
    }

    /// The seed and count the tasks are made from; `None` for tasks listed by an earlier version.
    #[must_use]
    pub fn seed(&self) -> Option<([u8; 16], u8)> {
        match &self.0 {
            Inputs::Seeded { seed, count } => Some((*seed, *count)),
            Inputs::Listed(_) => None,
        }
    }

    /// How many tasks there are.
    #[must_use]
    pub fn len(&self) -> usize {
        match &self.0 {
            Inputs::Seeded { count, .. } => usize::from(*count),
            Inputs::Listed(inputs) => inputs.len(),
        }
    }

    /// Whether there are none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The input of task `index`, if there is one.
    #[must_use]
    pub fn input(&self, index: usize) -> Option<TaskInput> {
        match &self.0 {
            Inputs::Seeded { seed, count } => (index < usize::from(*count)).then(|| {
                let index = u32::try_from(index).unwrap_or(u32::MAX);
                let digest = Sha256::new()
                    .chain_update(seed)
                    .chain_update(index.to_be_bytes())
                    .finalize();
                let mut input = [0; INPUT_LEN];
                input.copy_from_slice(&digest[..INPUT_LEN]);
                input
            }),
            Inputs::Listed(inputs) => inputs.get(index).copied(),
        }
    }

    /// Every task's input, in order.
    pub fn inputs(&self) -> impl Iterator<Item = TaskInput> + '_ {
        (0..self.len()).filter_map(|index| self.input(index))
    }
}

/// The input as the widget receives it: standard, padded base64.
#[must_use]
pub fn encode_input(input: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(input)
}

/// The number of leading zero bits of a digest, most significant bit first.
#[must_use]
pub fn leading_zero_bits(digest: &[u8]) -> u32 {
    let mut bits = 0;
    for byte in digest {
        if *byte == 0 {
            bits += 8;
        } else {
            return bits + byte.leading_zeros();
        }
    }
    bits
}

/// Whether `nonce` solves `input` at `difficulty`. Only nonces of the widget's form
/// (`tcn` and decimal digits, bounded length) are accepted.
#[must_use]
pub fn check(input: &[u8], nonce: &str, difficulty: u8) -> bool {
    let well_formed = nonce.len() <= MAX_NONCE_LEN
        && nonce
            .strip_prefix("tcn")
            .is_some_and(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()));
    well_formed && {
        let digest = Sha256::new()
            .chain_update(input)
            .chain_update(nonce)
            .finalize();
        leading_zero_bits(&digest) >= u32::from(difficulty)
    }
}

/// Finds the first nonce that solves `input`, as the widget's workers do. Expect
/// 2^`difficulty` hashes; difficulties are at most 32 in any valid configuration.
#[must_use]
pub fn solve(input: &[u8], difficulty: u8) -> String {
    let prefix = Sha256::new().chain_update(input);
    let mut buffer = [0u8; 20];
    let mut counter = 0u64;
    loop {
        let digest = prefix
            .clone()
            .chain_update(b"tcn")
            .chain_update(format_counter(&mut buffer, counter))
            .finalize();
        if leading_zero_bits(&digest) >= u32::from(difficulty) {
            return format!("tcn{counter}");
        }
        counter = counter.wrapping_add(1);
    }
}

/// Writes `n` in decimal into the end of `buffer` without allocating.
fn format_counter(buffer: &mut [u8; 20], mut n: u64) -> &[u8] {
    let mut start = buffer.len();
    loop {
        start -= 1;
        buffer[start] = b'0' + u8::try_from(n % 10).unwrap_or(0);
        n /= 10;
        if n == 0 {
            return &buffer[start..];
        }
    }
}

/// Why a submission does not solve its challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PowError {
    /// Not every task was answered exactly once.
    #[error("every task must be answered exactly once")]
    Incomplete,
    /// A nonce does not give enough leading zero bits.
    #[error("a nonce does not solve its task")]
    Wrong,
}

impl PowError {
    /// A short stable name for metrics, e.g. `wrong_nonce`.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            PowError::Incomplete => "incomplete",
            PowError::Wrong => "wrong_nonce",
        }
    }
}

/// Checks that `answers` answer every one of `tasks` (numbered from 0) exactly once, and
/// correctly.
///
/// # Errors
///
/// [`PowError::Incomplete`] or [`PowError::Wrong`].
pub fn verify(tasks: &Tasks, difficulty: u8, answers: &[Answer]) -> Result<(), PowError> {
    if answers.len() != tasks.len() {
        return Err(PowError::Incomplete);
    }
    let mut answered = vec![false; tasks.len()];
    for answer in answers {
        let index = usize::try_from(answer.number).map_err(|_| PowError::Incomplete)?;
        match answered.get_mut(index) {
            Some(seen @ false) => *seen = true,
            _ => return Err(PowError::Incomplete),
        }
    }
    let all_correct = answers.iter().all(|a| {
        tasks
            .input(a.number as usize)
            .is_some_and(|input| check(&input, &a.nonce, difficulty))
    });
    if all_correct {
        Ok(())
    } else {
        Err(PowError::Wrong)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VECTOR_INPUT: &str = "aGVsbG8tdHJ1c3RjYXB0Y2hhLXRhc2staW5wdXQ=";

    fn vector_input() -> Vec<u8> {
        base64::engine::general_purpose::STANDARD
            .decode(VECTOR_INPUT)
            .expect("base64")
    }

    #[test]
    fn matches_the_widgets_test_vectors() {
        let input = vector_input();
        assert_eq!(input, b"hello-trustcaptcha-task-input");
        for (difficulty, nonce, digest_prefix) in [
            (0, "tcn0", "c6a7afad"),
            (8, "tcn96", "008e63c52b30"),
            (12, "tcn3409", "000af93cf35b"),
            (16, "tcn264901", "00004609885f"),
        ] {
            assert_eq!(solve(&input, difficulty), nonce, "difficulty {difficulty}");
            assert!(check(&input, nonce, difficulty));
            let digest = Sha256::new()
                .chain_update(&input)
                .chain_update(nonce)
                .finalize();
            assert!(hex::encode(digest).starts_with(digest_prefix));
        }
        assert!(
            check(&input, "tcn264901", 17),
            "the vector has 17 leading zero bits"
        );
        assert!(!check(&input, "tcn264901", 18));
        assert!(!check(&input, "tcn95", 8));
    }

    #[test]
    fn only_widget_shaped_nonces_are_accepted() {
        let input = vector_input();
        for bad in [
            "",
            "tcn",
            "96",
            "TCN96",
            "tcn-1",
            "tcn 96",
            &format!("tcn{}", "0".repeat(40)),
        ] {
            assert!(!check(&input, bad, 0), "{bad:?}");
        }
    }

    #[test]
    fn verify_needs_each_task_exactly_once() {
        let inputs = Tasks::generate(3);
        let answers: Vec<Answer> = inputs
            .inputs()
            .enumerate()
            .map(|(i, input)| Answer {
                number: u32::try_from(i).expect("small"),
                nonce: solve(&input, 6),
            })
            .collect();
        assert_eq!(verify(&inputs, 6, &answers), Ok(()));
        let mut reversed = answers.clone();
        reversed.reverse();
        assert_eq!(verify(&inputs, 6, &reversed), Ok(()));
        assert_eq!(verify(&inputs, 6, &answers[..2]), Err(PowError::Incomplete));
        let duplicate = vec![answers[0].clone(), answers[0].clone(), answers[2].clone()];
        assert_eq!(verify(&inputs, 6, &duplicate), Err(PowError::Incomplete));
        let mut out_of_range = answers.clone();
        out_of_range[2].number = 7;
        assert_eq!(verify(&inputs, 6, &out_of_range), Err(PowError::Incomplete));
        let mut wrong = answers;
        wrong[1].nonce = "tcn999999999".into();
        assert_eq!(verify(&inputs, 30, &wrong), Err(PowError::Wrong));
        assert_eq!(encode_input(&inputs.input(0).expect("one")).len(), 24);
    }

    #[test]
    fn seeded_tasks_are_distinct_stable_and_read_back() {
        let tasks = Tasks::generate(4);
        let inputs: Vec<TaskInput> = tasks.inputs().collect();
        assert_eq!(inputs.len(), 4);
        assert!(inputs.windows(2).all(|pair| pair[0] != pair[1]));
        assert_eq!(tasks.input(4), None);
        let stored = serde_json::to_string(&tasks).expect("json");
        let read: Tasks = serde_json::from_str(&stored).expect("read back");
        assert_eq!(read.inputs().collect::<Vec<_>>(), inputs);
        assert_ne!(Tasks::generate(4), tasks, "a new seed each time");
        // A pending verification stored by an earlier version lists its inputs.
        let listed: Tasks =
            serde_json::from_str("[[7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7]]").expect("list");
        assert_eq!(listed.inputs().collect::<Vec<_>>(), vec![[7; 16]]);
    }
}
