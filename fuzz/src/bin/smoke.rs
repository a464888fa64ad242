//! A mutation fuzzer that runs on the stable toolchain: for each target it mutates the seeds
//! (bit flips, byte edits, insertions, deletions, splices, interesting bytes) for a fixed time
//! and fails on the first panic, printing the input. It is not coverage-guided; it is the CI
//! smoke run the targets get on every change.

use std::panic;
use std::time::{Duration, Instant};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const INTERESTING: &[u8] = b"\0\x7f\x80\xff{}[]()\"',.=!/:*?@$\\ \n";

fn mutate(rng: &mut Rng, input: &mut Vec<u8>, other: &[u8]) {
    for _ in 0..=rng.below(4) {
        let len = input.len();
        match rng.below(7) {
            0 if len > 0 => {
                let i = rng.below(len);
                input[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                input[i] = rng.next() as u8;
            }
            2 => {
                let i = rng.below(len + 1);
                input.insert(i, INTERESTING[rng.below(INTERESTING.len())]);
            }
            3 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(8));
                input.drain(i..i + n);
            }
            4 if !other.is_empty() => {
                let i = rng.below(len + 1);
                let j = rng.below(other.len());
                let n = 1 + rng.below((other.len() - j).min(16));
                let chunk: Vec<u8> = other[j..j + n].to_vec();
                input.splice(i..i, chunk);
            }
            5 if len > 1 => {
                let i = rng.below(len);
                let j = rng.below(len);
                input.swap(i, j);
            }
            _ => {
                let i = rng.below(len + 1);
                let v = rng.next().to_le_bytes();
                input.splice(i..i, v[..1 + rng.below(8)].iter().copied());
            }
        }
    }
    input.truncate(4096);
}

fn main() {
    let mut seconds = 10u64;
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--seconds") {
        match args.get(i + 1).and_then(|s| s.parse().ok()) {
            Some(s) => seconds = s,
            None => {
                eprintln!("error: --seconds needs a whole number");
                std::process::exit(2);
            }
        }
    }
    let targets = garrison_fuzz::targets();
    let per_target = Duration::from_millis(seconds * 1000 / targets.len() as u64);
    panic::set_hook(Box::new(|_| {}));
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ std::process::id() as u64);
    let mut failed = false;
    for t in &targets {
        let start = Instant::now();
        let mut corpus: Vec<Vec<u8>> = t.seeds.iter().map(|s| s.to_vec()).collect();
        let mut runs = 0u64;
        while start.elapsed() < per_target {
            let base = corpus[rng.below(corpus.len())].clone();
            let other = corpus[rng.below(corpus.len())].clone();
            let mut input = base;
            mutate(&mut rng, &mut input, &other);
            let run = t.run;
            let data = input.clone();
            if panic::catch_unwind(move || run(&data)).is_err() {
                eprintln!(
                    "FAIL {}: panicked on input {:?}",
                    t.name,
                    String::from_utf8_lossy(&input)
                );
                eprintln!("     bytes: {input:?}");
                failed = true;
                break;
            }
            runs += 1;
            if corpus.len() < 256 && rng.below(16) == 0 {
                corpus.push(input);
            }
        }
        println!("{:<18} {runs:>9} inputs, no panics", t.name);
    }
    if failed {
        std::process::exit(1);
    }
}
