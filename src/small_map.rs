//! A small string-keyed map for what is kept per machine for the service's lifetime (a
//! host's drive and NIC counters, a cached Node's kept labels and annotations): its entries
//! in a vector sorted by key, so it costs what it holds. A `BTreeMap` allocates a node for
//! eleven entries whatever it holds: ~2 KiB for one NIC's counters, ~20 MiB over a
//! 10,000-machine fleet. It is serialized exactly like a map, so the journal's JSON does not
//! change.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmallMap<V>(Vec<(Box<str>, V)>);

impl<V> Default for SmallMap<V> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<V> SmallMap<V> {
    pub fn new() -> Self {
        Self::default()
    }

    fn find(&self, key: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| k.as_ref().cmp(key))
    }

    pub fn get(&self, key: &str) -> Option<&V> {
        let i = self.find(key).ok()?;
        self.0.get(i).map(|(_, v)| v)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.find(key).is_ok()
    }

    /// Set `key` to `value`; the value it replaces, if any.
    pub fn insert(&mut self, key: &str, value: V) -> Option<V> {
        match self.find(key) {
            Ok(i) => self.0.get_mut(i).map(|(_, v)| std::mem::replace(v, value)),
            Err(i) => {
                // Exactly one more: a map grows by a key a poll, rarely.
                self.0.reserve_exact(1);
                self.0.insert(i, (key.into(), value));
                None
            }
        }
    }

    /// Take `key` out; its value, if it was there.
    pub fn remove(&mut self, key: &str) -> Option<V> {
        let i = self.find(key).ok()?;
        let (_, v) = self.0.remove(i);
        self.0.shrink_to_fit();
        Some(v)
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(k, _)| k.as_ref())
    }

    /// Entries in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &V)> {
        self.0.iter().map(|(k, v)| (k.as_ref(), v))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<V, K: AsRef<str>> FromIterator<(K, V)> for SmallMap<V> {
    /// A repeated key: the last one wins, as in a map.
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut v: Vec<(Box<str>, V)> = iter
            .into_iter()
            .map(|(k, v)| (k.as_ref().into(), v))
            .collect();
        // Newest first, a stable sort, then the first of each key kept.
        v.reverse();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v.dedup_by(|later, kept| later.0 == kept.0);
        v.shrink_to_fit();
        Self(v)
    }
}

impl<V, K: AsRef<str>, const N: usize> From<[(K, V); N]> for SmallMap<V> {
    fn from(entries: [(K, V); N]) -> Self {
        entries.into_iter().collect()
    }
}

impl<V: Serialize> Serialize for SmallMap<V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for SmallMap<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Read once per machine at start-up: a map's own rules (a repeated key: the last
        // wins), then compacted.
        let m = BTreeMap::<String, V>::deserialize(d)?;
        Ok(m.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_keys_sorted_and_replaces_values() {
        let mut m = SmallMap::new();
        assert_eq!(m.insert("eth1", 1), None);
        assert_eq!(m.insert("eth0", 2), None);
        assert_eq!(m.insert("eth1", 3), Some(1));
        assert_eq!(m.get("eth1"), Some(&3));
        assert_eq!(m.get("eth2"), None);
        assert!(m.contains_key("eth0") && !m.contains_key("eth"));
        assert_eq!(m.remove("eth0"), Some(2));
        assert_eq!(m.remove("eth0"), None);
        assert_eq!(m.keys().collect::<Vec<_>>(), ["eth1"]);
        m.insert("eth0", 2);
        let keys: Vec<&str> = m.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["eth0", "eth1"]);
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn serialized_like_a_map_both_ways() {
        let m: SmallMap<u64> = [("b", 2), ("a", 1)].into();
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(json, r#"{"a":1,"b":2}"#);
        let as_map: BTreeMap<String, u64> = serde_json::from_str(&json).unwrap();
        assert_eq!(serde_json::to_string(&as_map).unwrap(), json);
        let back: SmallMap<u64> = serde_json::from_str(r#"{"b":2,"a":1}"#).unwrap();
        assert_eq!(back, m);
        let back: SmallMap<u64> = [("a", 9), ("b", 2), ("a", 1)].into_iter().collect();
        assert_eq!(back, m);
        assert!(serde_json::from_str::<SmallMap<u64>>("[1,2]").is_err());
    }

    #[test]
    fn costs_what_it_holds() {
        let mut m: SmallMap<[u64; 18]> = [("eth0", [0; 18])].into();
        assert_eq!(m.0.capacity(), 1);
        m.insert("eth1", [1; 18]);
        assert_eq!(m.0.capacity(), 2);
    }
}
