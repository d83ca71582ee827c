//! The state machine's snapshot: the KV map, the client sessions and the
//! chain head (not the whole chain), and its decoding with typed errors.

use super::*;

impl StateMachine {
    /// The snapshot data of the current state.
    pub fn snapshot_data(&self) -> SnapshotData {
        let (height, hash) = self.head();
        SnapshotData {
            applied: self.applied,
            head: Some(ChainHead { height, hash }),
            kv: self
                .sorted_kv()
                .into_iter()
                .map(|(k, v)| KvPair {
                    key: k.clone(),
                    value: v.clone(),
                })
                .collect(),
            sessions: Vec::new(),
            addresses: self.addresses.values().cloned().collect(),
            clients: self.sessions.all_stored(),
        }
    }

    /// Decodes snapshot data taken at `slot`, checking it against itself.
    pub fn decode_snapshot(slot: u64, data: &[u8]) -> Result<SnapshotData, SnapshotError> {
        let d = SnapshotData::decode(data).map_err(|e| SnapshotError::Decode(e.to_string()))?;
        let head = d
            .head
            .as_ref()
            .ok_or(SnapshotError::Inconsistent("no chain head"))?;
        if d.applied != slot {
            return Err(SnapshotError::Inconsistent(
                "applied slot differs from the metadata's",
            ));
        }
        // One block per decided slot: the head's height is the slot.
        if head.height != slot || head.hash.len() != 32 {
            return Err(SnapshotError::Inconsistent(
                "chain head does not fit the slot",
            ));
        }
        if Self::snapshot_sessions(&d).is_none() {
            return Err(SnapshotError::Inconsistent("bad session"));
        }
        Ok(d)
    }

    /// The state a snapshot describes (checked by
    /// [`StateMachine::decode_snapshot`]), with the membership at its slot.
    pub fn from_snapshot(d: &SnapshotData, conf_state: ConfState) -> Self {
        let kv =
            d.kv.iter()
                .map(|p| (p.key.clone(), p.value.clone()))
                .collect();
        let sessions = Self::snapshot_sessions(d).unwrap_or_default();
        let mut sm = StateMachine::from_parts(d.applied, kv, sessions, None, d.head.clone());
        sm.set_membership(conf_state, d.addresses.clone());
        sm
    }

    /// The sessions a snapshot carries; `None` if one is inconsistent, or
    /// in the single-outcome form of earlier versions (not converted, as a
    /// store holding it is not: see `storage`).
    fn snapshot_sessions(d: &SnapshotData) -> Option<Sessions> {
        if !d.sessions.is_empty() {
            return None;
        }
        Sessions::from_stored(d.clients.iter().cloned())
    }
}
