//! A hand-driven phone: a `PhoneSession` over a tokio-rustls connection,
//! like `PhoneClient`, with two places where a test can step in:
//!
//! * after KEY_GENERATE_REQUEST arrives, before the key is generated (to
//!   hold a device's lease while another phone tries the same name);
//! * when STORE_CERTIFICATE_REQUEST arrives: hand the certificate to the
//!   test and stop without answering, keeping the connection open until the
//!   test says so (to kill the server between issuing and confirmation);
//! * once STORE_CERTIFICATE_RESPONSE is written: tell the test (to kill the
//!   server around the phone's confirmation).
//!
//! Shared by the capf-server and capf-cli integration tests (the latter
//! include this file with `#[path]`).
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::BytesMut;
use capf_operations::capf_ca::PrivateKey;
use capf_operations::capf_wire::{FrameCodec, Message};
use capf_operations::phone::{KeyGenFailure, PhoneConfig, PhoneEvent, PhoneOutcome, PhoneSession};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_rustls::TlsConnector;

/// Where the test steps in. Everything is optional; the default behaves
/// like `PhoneClient`.
#[derive(Default)]
pub struct Script {
    /// Told when KEY_GENERATE_REQUEST has arrived (the server holds the
    /// device's lease from then on).
    pub key_requested: Option<oneshot::Sender<()>>,
    /// Waited for before the key is generated.
    pub generate_when: Option<oneshot::Receiver<()>>,
    /// When STORE_CERTIFICATE_REQUEST arrives: the certificate goes to the
    /// sender, nothing is answered, and the connection stays open until the
    /// receiver fires (or its sender is dropped); then it is dropped.
    pub hold_at_store: Option<(oneshot::Sender<Vec<u8>>, oneshot::Receiver<()>)>,
    /// Told once STORE_CERTIFICATE_RESPONSE (the phone's confirmation) has
    /// been written.
    pub confirmed: Option<oneshot::Sender<()>>,
}

/// How a scripted run ended.
#[derive(Debug)]
pub enum Ending {
    /// The session ran to its end.
    Finished {
        /// The phone session's outcome.
        outcome: PhoneOutcome,
        /// The LSC stored and its key, if one was (boxed: keys are large).
        installed: Option<Box<(Vec<u8>, PrivateKey)>>,
    },
    /// Stopped at STORE_CERTIFICATE_REQUEST without answering.
    HeldAtStore {
        /// The certificate the server sent.
        certificate_der: Vec<u8>,
    },
}

/// Connects to `addr` (`127.0.0.1:PORT`) and runs one session.
pub async fn run_scripted(
    addr: String,
    tls: Arc<rustls::ClientConfig>,
    config: PhoneConfig,
    mut script: Script,
) -> Ending {
    let tcp = TcpStream::connect(&addr).await.expect("connect");
    tcp.set_nodelay(true).expect("nodelay");
    let name = ServerName::try_from("127.0.0.1").expect("server name");
    let mut stream = tokio::time::timeout(
        Duration::from_secs(10),
        TlsConnector::from(tls).connect(name, tcp),
    )
    .await
    .expect("TLS handshake timed out")
    .expect("TLS handshake");

    let mut session = PhoneSession::new(config, SystemTime::now());
    let mut codec = FrameCodec::new();
    let mut inbound = BytesMut::with_capacity(4096);
    let mut outbound = BytesMut::with_capacity(4096);
    let mut pending_key: Option<PrivateKey> = None;
    let mut installed = None;
    loop {
        let mut wrote = false;
        while let Some(t) = session.poll_transmit() {
            outbound.clear();
            t.encode(&mut outbound).expect("encode");
            if stream.write_all(&outbound).await.is_err() {
                session.connection_lost(SystemTime::now());
                break;
            }
            wrote = true;
        }
        let _ = stream.flush().await;
        // The first write after the certificate was stored is the
        // confirmation.
        if wrote
            && installed.is_some()
            && let Some(tx) = script.confirmed.take()
        {
            let _ = tx.send(());
        }
        if let Some(event) = session.poll_event() {
            match event {
                PhoneEvent::GenerateKey(spec) => {
                    if let Some(tx) = script.key_requested.take() {
                        let _ = tx.send(());
                    }
                    if let Some(rx) = script.generate_when.take() {
                        let _ = rx.await;
                    }
                    let key = tokio::task::spawn_blocking(move || PrivateKey::generate(spec))
                        .await
                        .expect("key task")
                        .expect("key generation");
                    let spki = key
                        .public_key_der()
                        .map_err(|e| KeyGenFailure::new(e.to_string()));
                    pending_key = Some(key);
                    session.key_generated(SystemTime::now(), spki);
                }
                PhoneEvent::StoreCertificate { certificate_der } => {
                    if let Some((tx, release)) = script.hold_at_store.take() {
                        let _ = tx.send(certificate_der.to_vec());
                        let _ = release.await;
                        drop(stream);
                        return Ending::HeldAtStore {
                            certificate_der: certificate_der.to_vec(),
                        };
                    }
                    let key = pending_key.take().expect("a key was generated");
                    installed = Some(Box::new((certificate_der.to_vec(), key)));
                    session.certificate_stored(SystemTime::now(), true);
                }
                PhoneEvent::DeleteCertificate => {
                    let had = session.config().lsc_der.is_some();
                    session.certificate_deleted(SystemTime::now(), had);
                }
                PhoneEvent::Finished => {}
            }
            continue;
        }
        if session.is_finished() {
            break;
        }
        match codec.decode(&mut inbound) {
            Ok(Some(frame)) => {
                match Message::from_frame(&frame) {
                    Ok(m) => session.handle_message(SystemTime::now(), frame.session_id, m),
                    Err(e) => session.handle_malformed(SystemTime::now(), &e),
                }
                continue;
            }
            Ok(None) => {}
            Err(e) => {
                session.handle_malformed(SystemTime::now(), &e);
                continue;
            }
        }
        let sleep = session.poll_timeout().map_or(Duration::from_secs(60), |d| {
            d.duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO)
        });
        tokio::select! {
            read = stream.read_buf(&mut inbound) => match read {
                Ok(0) | Err(_) => session.connection_lost(SystemTime::now()),
                Ok(_) => {}
            },
            () = tokio::time::sleep(sleep) => session.handle_timeout(SystemTime::now()),
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.shutdown()).await;
    Ending::Finished {
        outcome: session.outcome().cloned().expect("an outcome"),
        installed,
    }
}
