//! The TTL reaper: every `reaper_interval`, sandboxes whose expiry passed are destroyed or
//! paused ([`super::TtlAction`]; a sandbox created with `auto_pause` is always paused). Each action runs on its own detached task so a slow pause
//! never delays the next tick, and the manager's own per-sandbox lock keeps it from racing
//! with RPCs on the same sandbox.

use super::{SandboxManager, TtlAction, now_unix};

pub(super) async fn run(mgr: SandboxManager) {
    let mut tick = tokio::time::interval(mgr.inner.config.reaper_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let in_flight = std::sync::Arc::new(std::sync::Mutex::new(
        std::collections::HashSet::<String>::new(),
    ));
    loop {
        tick.tick().await;
        for id in mgr.expired(now_unix()) {
            if !in_flight
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id.clone())
            {
                continue;
            }
            let (mgr, in_flight) = (mgr.clone(), in_flight.clone());
            tokio::spawn(async move {
                let auto_pause = mgr.get(&id).is_ok_and(|i| i.record.auto_pause);
                let action = if auto_pause {
                    TtlAction::Pause
                } else {
                    mgr.inner.config.ttl_action
                };
                tracing::info!(sandbox_id = %id, ?action, "sandbox expired");
                let result = match action {
                    TtlAction::Destroy => mgr.destroy(&id).await,
                    TtlAction::Pause => match mgr.pause(&id).await {
                        Ok(_) => Ok(()),
                        Err(e) => {
                            tracing::warn!(sandbox_id = %id, error = %e, "TTL pause failed; destroying");
                            mgr.destroy(&id).await
                        }
                    },
                };
                if let Err(e) = result {
                    tracing::error!(sandbox_id = %id, error = %e, "TTL action failed");
                }
                in_flight
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&id);
            });
        }
    }
}
