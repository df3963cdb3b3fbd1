//! One connection: drives a `ServerSession` over a TLS stream.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use capf_ca::{EcCurve, Issuer, KeySpec, SigningBackend};
use capf_operations::{
    Lease, OperationsError, OutcomeKind, Reply, ServerEvent, ServerSession, SessionOutcome,
    escape_text,
};
use capf_wire::{FrameCodec, Message};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::oneshot;
use tracing::{debug, info, warn};

use crate::admission::Ticket;
use crate::clock::SessionClock;
use crate::server::Shared;

/// Runs one CAPF session on an established TLS stream. The session ends
/// early if the server evicts the connection (it has not said who it is
/// while the server is full).
pub(crate) async fn serve_connection<S>(mut stream: S, shared: Arc<Shared>, ticket: &Ticket)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let clock = SessionClock::start();
    let started = std::time::Instant::now();
    let mut identified = false;
    let session_id = capf_operations::new_session_id();
    tracing::Span::current().record("session", session_id);
    let mut session = ServerSession::new(session_id, shared.config.clone(), clock.now());
    let mut codec = FrameCodec::with_max_body_len(shared.options.max_frame_body);
    let mut inbound = BytesMut::with_capacity(1024);
    let mut outbound = BytesMut::with_capacity(1024);
    let mut lease: Option<Lease> = None;
    let mut outcome: Option<SessionOutcome> = None;

    'session: loop {
        // A finished session's last events (release the lease, write the
        // troubleshoot traces) come before its END_SESSION goes out, so a
        // phone that reconnects at once finds the device free.
        if session.is_finished() {
            while let Some(event) = session.poll_event() {
                // Boxed: see below.
                Box::pin(handle_event(
                    event,
                    &mut session,
                    &shared,
                    &clock,
                    &mut lease,
                    &mut outcome,
                ))
                .await;
            }
        }
        // Everything queued goes out, one write per message.
        while let Some(transmit) = session.poll_transmit() {
            outbound.clear();
            if let Err(e) = transmit.encode(&mut outbound) {
                warn!("cannot encode {}: {e}", transmit.message.command());
                break 'session;
            }
            if let Err(e) = stream.write_all(&outbound).await {
                debug!("write failed: {e}");
                break 'session;
            }
        }
        if let Err(e) = stream.flush().await {
            debug!("flush failed: {e}");
            break;
        }
        // Then the runtime's work.
        if let Some(event) = session.poll_event() {
            // Boxed, so that the event's state (a store change, an LSC
            // being signed, a trace being written) takes memory only while
            // it runs, not in every connection's task while the phone
            // thinks (10,000 phones may wait in key generation at once).
            Box::pin(handle_event(
                event,
                &mut session,
                &shared,
                &clock,
                &mut lease,
                &mut outcome,
            ))
            .await;
            continue;
        }
        if session.is_finished() {
            break;
        }
        // Frames already buffered come first, one at a time, so that the
        // session's events are handled between them.
        match codec.decode(&mut inbound) {
            Ok(Some(frame)) => {
                match Message::from_frame(&frame) {
                    Ok(message) => {
                        debug!(command = %frame.command, "received");
                        session.handle_message(clock.now(), frame.session_id, message);
                        // Past AUTH_RESPONSE: the phone said who it is, and
                        // is never evicted now.
                        if !identified && session.waiting_for() != "AUTH_RESPONSE" {
                            identified = true;
                            ticket.identified();
                        }
                    }
                    Err(e) => session.handle_malformed(clock.now(), &e),
                }
                continue;
            }
            Ok(None) => {}
            Err(e) => {
                session.handle_malformed(clock.now(), &e);
                inbound.clear();
                continue;
            }
        }
        // Then wait for the phone, or the session's deadline.
        let sleep = match session.poll_timeout() {
            Some(deadline) => deadline
                .duration_since(clock.now())
                .unwrap_or(Duration::ZERO),
            // Nothing to wait for: cannot happen with an empty event queue
            // and an unfinished session; end rather than hang.
            None => break,
        };
        tokio::select! {
            read = stream.read_buf(&mut inbound) => match read {
                Ok(0) | Err(_) => {
                    debug!(waiting_for = session.waiting_for(), "phone closed the connection");
                    break;
                }
                Ok(_) => {}
            },
            () = tokio::time::sleep(sleep) => session.handle_timeout(clock.now()),
            () = ticket.evicted() => {
                debug!("evicted before saying who it is");
                break;
            }
        }
    }
    // The phone may close without close_notify; so do we (as capfd does):
    // a best-effort shutdown.
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.shutdown()).await;
    if let Some(lease) = lease.take() {
        release(&shared, lease).await;
    }
    if let Some(o) = &outcome {
        record_outcome(&shared, &session, o, started.elapsed());
    }
    match &outcome {
        // An outcome may quote the phone's certificate (a protocol error
        // naming its subject): escaped, it cannot forge log lines.
        Some(o) if o.is_success() => {
            info!(outcome = %escape_text(&o.kind.to_string()), "session done")
        }
        // Guessing at strings is what an operator must see.
        Some(o)
            if matches!(
                o.kind,
                OutcomeKind::Refused(
                    capf_operations::capf_auth::Refusal::WrongAuthString { .. }
                        | capf_operations::capf_auth::Refusal::LockedOut
                )
            ) =>
        {
            warn!(
                outcome = %escape_text(&o.kind.to_string()),
                reason = ?o.end_reason,
                "session refused"
            )
        }
        Some(o) => info!(
            outcome = %escape_text(&o.kind.to_string()),
            reason = ?o.end_reason,
            "session ended"
        ),
        None => info!(
            waiting_for = session.waiting_for(),
            "connection closed mid-session"
        ),
    }
    // The session's changes are durable: the embedder's hook may act on
    // them (it must not block: see `SessionHook`).
    if let (Some(hook), Some(o)) = (&shared.options.on_session_done, &outcome) {
        hook.call(o);
    }
}

async fn handle_event(
    event: ServerEvent,
    session: &mut ServerSession,
    shared: &Arc<Shared>,
    clock: &SessionClock,
    lease: &mut Option<Lease>,
    outcome: &mut Option<SessionOutcome>,
) {
    match event {
        ServerEvent::LoadDevice(name) => {
            tracing::Span::current().record("device", name.as_str());
            let ttl = lease_ttl(shared);
            let result = store_call(|reply| shared.store.begin(&name, clock.now(), ttl, reply))
                .await
                .map(|(held, device)| {
                    *lease = Some(held);
                    device
                });
            session.device_loaded(clock.now(), result);
        }
        ServerEvent::Commit {
            change,
            release_lease,
        } => {
            // The session's last change takes the lease back with it: one
            // store call (and, with SQLite, one write) fewer per session.
            let result = match lease.as_ref() {
                Some(held) => {
                    let asked = std::time::Instant::now();
                    let result = store_call(|reply| {
                        shared.store.commit(held, &change, release_lease, reply)
                    })
                    .await;
                    shared.metrics.store_commit(asked.elapsed());
                    match result {
                        Ok(_) => {
                            if release_lease {
                                *lease = None;
                            }
                            Ok(())
                        }
                        Err(e) => {
                            warn!("commit of {} failed: {e}", change.kind());
                            Err(e)
                        }
                    }
                }
                None => Err(OperationsError::NoLease),
            };
            session.committed(clock.now(), result);
        }
        ServerEvent::Issue(request) => {
            let result = match tokio::time::timeout(
                shared.options.queue_timeout,
                shared.issuing.clone().acquire_owned(),
            )
            .await
            {
                Ok(Ok(permit)) => {
                    let issuer = shared.issuer.clone();
                    let profile = shared.config.params.lsc_profile();
                    let device = request.device.clone();
                    let clock = *clock;
                    let issue = move || {
                        let _permit = permit;
                        issuer.issue_lsc(
                            request.device.as_str(),
                            &request.public_key,
                            &profile,
                            clock.now(),
                        )
                    };
                    let issued = if signs_inline(&shared.issuer) {
                        Ok(issue())
                    } else {
                        tokio::task::spawn_blocking(issue).await
                    };
                    match issued {
                        Ok(Ok(lsc)) => {
                            shared.metrics.issued(&lsc.key_spec.to_string());
                            Ok(lsc)
                        }
                        Ok(Err(source)) => Err(OperationsError::Issuance {
                            name: device.to_string(),
                            source: Box::new(source),
                        }),
                        Err(e) => Err(OperationsError::store(e)),
                    }
                }
                _ => Err(OperationsError::IssuanceBusy),
            };
            session.issued(clock.now(), result);
        }
        ServerEvent::Finished(done) => {
            if let OutcomeKind::Retrieved(certs) = &done.kind
                && let (Some(dir), Some(device)) = (&shared.options.trace_dir, &done.device)
            {
                crate::traces::write(dir, device, certs).await;
            }
            if let Some(held) = lease.take() {
                release(shared, held).await;
            }
            *outcome = Some(done);
        }
    }
}

/// Counts how a session ended.
fn record_outcome(
    shared: &Shared,
    session: &ServerSession,
    outcome: &SessionOutcome,
    took: Duration,
) {
    let operation = session.device().map_or("none", |d| d.operation().name());
    shared.metrics.session_ended(operation, outcome.kind.name());
    match &outcome.kind {
        OutcomeKind::Installed { .. } => shared.metrics.enrollment(took),
        OutcomeKind::Refused(refusal) => {
            shared.metrics.refused(refusal.name());
            if matches!(
                refusal,
                capf_operations::capf_auth::Refusal::WrongAuthString { locked: true, .. }
            ) {
                shared.metrics.lockout();
            }
        }
        _ => {}
    }
}

/// Makes a store call and awaits its reply. The reply comes from the
/// store's own thread (SQLite's committer) or at once (an in-memory
/// store); no thread of ours waits for it.
async fn store_call<T: Send + 'static>(call: impl FnOnce(Reply<T>)) -> Result<T, OperationsError> {
    let (answer, answered) = oneshot::channel();
    call(Box::new(move |result| {
        let _ = answer.send(result);
    }));
    answered.await.unwrap_or(Err(OperationsError::Unanswered))
}

/// Whether one LSC signature is cheap enough to make on the async worker:
/// with ring, a P-256 LSC takes about 70 µs in all (`lsc_issuance` bench),
/// less than a round trip through the blocking pool costs in wake-ups.
/// RSA (0.8 ms with ring, 3 ms without) and RustCrypto go to the pool.
fn signs_inline(issuer: &Issuer) -> bool {
    let key = issuer.private_key();
    key.signing_backend() == SigningBackend::Ring && key.spec() == KeySpec::Ec(EcCurve::P256)
}

fn lease_ttl(shared: &Shared) -> Duration {
    if let Some(ttl) = shared.options.lease_ttl {
        return ttl;
    }
    let p = &shared.config.params;
    // Longer than the longest session: key generation plus a few replies.
    p.key_generation_timeout + p.auth_timeout + 4 * p.reply_timeout + Duration::from_secs(60)
}

async fn release(shared: &Arc<Shared>, lease: Lease) {
    let _ = store_call(|reply| shared.store.release(&lease, reply)).await;
}
