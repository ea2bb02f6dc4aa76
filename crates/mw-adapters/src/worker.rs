//! The worker pool: tokio tasks that take events off the queue (FIFO per
//! conversation) and drive the core pipeline through the ports.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use mw_core::{
    Actions, Classifier, Conversations, Delivery, Flags, Orders, Pipeline, Policy, PortError,
    Processed, Queue, Renderer, RuntimeFlags, StateStore, Verifier,
};
use tokio::sync::{Notify, watch};
use tracing::{Instrument, info, warn};

use crate::dryrun::{ConversationFile, PayloadVendor};
use crate::metrics::Metrics;
use crate::webhook::parse_payload;

/// Where conversations and orders come from.
#[derive(Clone)]
pub enum Vendor {
    /// Dry run: from each event's payload, or a local conversations file.
    DryRun(Arc<ConversationFile>),
    /// A real helpdesk.
    Live {
        /// Conversation reader.
        conversations: Arc<dyn Conversations>,
        /// Order reader.
        orders: Arc<dyn Orders>,
    },
}

/// Runtime flags from any store, cached for at most `ttl`. A read that fails is not
/// cached and yields an error (⇒ safe mode) for that event.
pub struct CachedFlags {
    source: Arc<dyn Flags>,
    ttl: Duration,
    cache: Mutex<Option<(Instant, RuntimeFlags)>>,
}

impl std::fmt::Debug for CachedFlags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedFlags")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl CachedFlags {
    /// Flags from `source`, cached for `ttl`.
    pub fn new(source: Arc<dyn Flags>, ttl: Duration) -> CachedFlags {
        CachedFlags {
            source,
            ttl,
            cache: Mutex::new(None),
        }
    }
}

#[async_trait::async_trait]
impl Flags for CachedFlags {
    async fn flags(&self) -> Result<RuntimeFlags, PortError> {
        if let Ok(cache) = self.cache.lock()
            && let Some((at, flags)) = cache.as_ref()
            && at.elapsed() < self.ttl
        {
            return Ok(flags.clone());
        }
        let flags = self.source.flags().await?;
        if let Ok(mut cache) = self.cache.lock() {
            *cache = Some((Instant::now(), flags.clone()));
        }
        Ok(flags)
    }
}

/// Worker tuning.
#[derive(Debug, Clone, Copy)]
pub struct WorkerConfig {
    /// Concurrent tasks (0: accept events only, process none).
    pub concurrency: usize,
    /// Visibility timeout of a received message.
    pub visibility: Duration,
    /// Longest wait between polls when idle.
    pub idle_poll: Duration,
    /// Longest processing time of one event before it is released.
    pub event_timeout: Duration,
}

/// Everything the workers need.
pub struct WorkerDeps {
    /// The queue.
    pub queue: Arc<dyn Queue>,
    /// The state store.
    pub state: Arc<dyn StateStore>,
    /// Runtime flags (cached).
    pub flags: Arc<dyn Flags>,
    /// Conversations and orders.
    pub vendor: Vendor,
    /// Side effects.
    pub actions: Arc<dyn Actions>,
    /// Classifier.
    pub classifier: Arc<dyn Classifier>,
    /// Verifier.
    pub verifier: Arc<dyn Verifier>,
    /// Tier policy.
    pub policy: Arc<dyn Policy>,
    /// Template renderer.
    pub renderer: Arc<dyn Renderer>,
    /// `dry_run` or `live`.
    pub mode: &'static str,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Woken when an event is enqueued.
    pub wake: Arc<Notify>,
}

/// A short, non-identifying correlation id for an event key.
pub fn correlation_id(event_key: &str) -> String {
    mw_core::fingerprint(event_key.as_bytes())[..16].to_owned()
}

/// Processes one delivery through the pipeline. `Err` means "retry later".
pub async fn process(deps: &WorkerDeps, delivery: &Delivery) -> Result<Processed, String> {
    let (event, payload) = parse_payload(&delivery.payload).map_err(|error| error.to_string())?;
    let flags = match deps.flags.flags().await {
        Ok(flags) => Some(flags),
        Err(error) => {
            warn!(error = %error, "runtime flags unreadable; behaving as safe mode");
            None
        }
    };
    let scoped;
    let (conversations, orders): (&dyn Conversations, &dyn Orders) = match &deps.vendor {
        Vendor::DryRun(file) => {
            scoped = PayloadVendor::new(event.clone(), payload, file.clone());
            (&scoped, &scoped)
        }
        Vendor::Live {
            conversations,
            orders,
        } => (conversations.as_ref(), orders.as_ref()),
    };
    let pipeline = Pipeline {
        conversations,
        orders,
        classifier: deps.classifier.as_ref(),
        verifier: deps.verifier.as_ref(),
        actions: deps.actions.as_ref(),
        state: deps.state.as_ref(),
        policy: deps.policy.as_ref(),
        renderer: deps.renderer.as_ref(),
        mode: deps.mode,
    };
    pipeline
        .process(&event, &delivery.event_key, flags.as_ref(), Utc::now())
        .await
        .map_err(|error| error.to_string())
}

/// Processes one delivery within `event_timeout`, logging and counting the
/// outcome. `Err` carries the redacted reason: the delivery is to be retried.
pub async fn process_logged(
    deps: &WorkerDeps,
    delivery: &Delivery,
    event_timeout: Duration,
) -> Result<Processed, String> {
    let started = Instant::now();
    match tokio::time::timeout(event_timeout, process(deps, delivery)).await {
        Ok(Ok(processed)) => {
            match &processed {
                Processed::Skipped { reason, .. } => {
                    info!(skipped = reason.code(), "event skipped")
                }
                Processed::Decided {
                    decision, actions, ..
                } => {
                    deps.metrics.decision(decision.tier.as_str());
                    for action in actions {
                        deps.metrics.action(&action.kind, &action.outcome);
                    }
                    info!(
                        tier = decision.tier.as_str(),
                        intent = decision.primary_intent.as_str(),
                        team = %decision.team_name,
                        actions = actions.len(),
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "event processed"
                    );
                }
            }
            Ok(processed)
        }
        Ok(Err(error)) => {
            deps.metrics.processing_failure();
            let error = mw_core::redact(&error);
            warn!(error = %error, receive_count = delivery.receive_count, "event failed; will retry");
            Err(error)
        }
        Err(_) => {
            deps.metrics.processing_failure();
            warn!(
                receive_count = delivery.receive_count,
                "event timed out; will retry"
            );
            Err("processing timed out".into())
        }
    }
}

async fn handle(deps: &WorkerDeps, delivery: Delivery, event_timeout: Duration) {
    let queue = deps.queue.as_ref();
    match process_logged(deps, &delivery, event_timeout).await {
        Ok(_) => {
            if let Err(error) = queue.ack(&delivery.receipt).await {
                warn!(error = %error, "ack failed; the event will be redelivered and deduplicated");
            }
        }
        Err(reason) => {
            let _ = queue.release(&delivery.receipt, &reason, Utc::now()).await;
        }
    }
}

/// Runs the pool until `shutdown` turns true; each task finishes its current event
/// first. Returns when every task has stopped.
pub async fn run(deps: Arc<WorkerDeps>, config: WorkerConfig, shutdown: watch::Receiver<bool>) {
    let mut tasks = Vec::new();
    // Zero workers: ingress only (benchmarks, or a node that only accepts events).
    for index in 0..config.concurrency {
        let deps = deps.clone();
        let mut shutdown = shutdown.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                if *shutdown.borrow() {
                    break;
                }
                let received = deps.queue.receive(1, config.visibility, Utc::now()).await;
                let delivery = match received {
                    Ok(mut deliveries) if !deliveries.is_empty() => deliveries.remove(0),
                    Ok(_) => {
                        tokio::select! {
                            _ = deps.wake.notified() => {}
                            _ = tokio::time::sleep(config.idle_poll) => {}
                            _ = shutdown.changed() => {}
                        }
                        continue;
                    }
                    Err(error) => {
                        warn!(worker = index, error = %error, "queue receive failed");
                        tokio::time::sleep(config.idle_poll).await;
                        continue;
                    }
                };
                let span = tracing::info_span!("event", correlation_id = %correlation_id(&delivery.event_key));
                handle(&deps, delivery, config.event_timeout).instrument(span).await;
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
}
