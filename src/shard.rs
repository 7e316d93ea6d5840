//! Sharding a fleet of replicas between copies of `watch`: `--shard I/N` syncs the replicas
//! whose name hashes to `I`, each shard electing its own leader.
//!
//! The split is by a hash of the replica's name alone, so every copy given the same `N`
//! agrees on it without talking to the others, and a replica stays in its shard as others
//! come and go. Changing `N` moves most replicas; a small fleet may split unevenly.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

/// One shard of `count`, numbered from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This shard, 1 to `count`.
    pub index: u32,
    /// How many shards there are.
    pub count: u32,
}

/// A `--shard` that is not `I/N` with 1 ≤ I ≤ N.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0:?}: expected I/N with 1 <= I <= N, e.g. 1/3")]
pub struct ParseShardError(String);

impl Shard {
    /// Every replica, in one shard.
    pub const ALL: Shard = Shard { index: 1, count: 1 };

    /// Whether the replica named `replica` is this shard's.
    pub fn owns(&self, replica: &str) -> bool {
        let digest = Sha256::digest(replica.as_bytes());
        let head = u64::from_be_bytes(digest[..8].try_into().expect("a digest has 32 bytes"));
        head % u64::from(self.count) == u64::from(self.index - 1)
    }
}

impl FromStr for Shard {
    type Err = ParseShardError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = || ParseShardError(text.to_string());
        let (index, count) = text.split_once('/').ok_or_else(error)?;
        let index: u32 = index.trim().parse().map_err(|_| error())?;
        let count: u32 = count.trim().parse().map_err(|_| error())?;
        if index == 0 || index > count {
            return Err(error());
        }
        Ok(Shard { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_i_of_n_and_refuses_the_rest() {
        assert_eq!("2/3".parse(), Ok(Shard { index: 2, count: 3 }));
        for bad in ["0/3", "4/3", "3", "a/b", "1/0", ""] {
            let error = bad.parse::<Shard>().unwrap_err().to_string();
            assert!(error.contains("expected I/N"), "{bad}: {error}");
        }
    }

    #[test]
    fn every_replica_is_in_exactly_one_shard_and_stays_there() {
        let names: Vec<String> = (0..200).map(|i| format!("replica-{i}")).collect();
        let shards: Vec<Shard> = (1..=3).map(|index| Shard { index, count: 3 }).collect();
        let mut sizes = [0; 3];
        for name in &names {
            let owners: Vec<usize> = (0..3).filter(|&i| shards[i].owns(name)).collect();
            assert_eq!(owners.len(), 1, "{name} is in shards {owners:?}");
            sizes[owners[0]] += 1;
        }
        assert!(sizes.iter().all(|&n| n > 40), "uneven split: {sizes:?}");
        // The hash is of the name alone: the same answer on every machine and release.
        let owner = |name: &str| (1..=3).find(|&i| Shard { index: i, count: 3 }.owns(name));
        assert_eq!(
            ["replica-1", "replica-2", "replica-3"].map(owner),
            [Some(1), Some(3), Some(2)]
        );
        assert!(names.iter().all(|n| Shard::ALL.owns(n)));
    }
}
