//! A phone's CAPF servers (the `<capfList>` of its configuration, up to
//! five) and how it walks them, written once for `capf phone` and
//! `capf loadgen`.
//!
//! * An attempt tries the servers in list order, starting with the current
//!   one and wrapping around. A server that cannot be reached (TCP connect
//!   refused or timed out, TLS handshake failed) is skipped at once: the
//!   same attempt goes on with the next one.
//! * The first server that answers runs the session, and the attempt ends
//!   with it. A session that fails after it started (connection lost, no
//!   answer) is a failed attempt, and the next attempt starts with the
//!   server after that one: a node that died mid-session is not tried
//!   first again.
//! * An attempt in which no server could be reached is a failed attempt
//!   too (a communication failure); the next one starts where it did.
//! * Between failed attempts the phone waits the retry interval. Whether
//!   there is a next attempt is the phone's retry rule (see
//!   [`WalkingPhone::attempt_ended`]): a Cisco phone retries a
//!   communication failure 3 more times, 30 seconds apart.

use std::time::Duration;

use capf_operations::phone::{FailureCause, LscChange, PhoneFailure, PhoneOutcome, PhoneStep};
use capf_server::ServerError;

use super::server_address;
use crate::Failure;

/// The most CAPF servers a phone's configuration lists.
pub(crate) const MAX_SERVERS: usize = 5;

/// A phone's CAPF servers, in its order (`host:port` each).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ServerList {
    servers: Vec<String>,
}

impl ServerList {
    /// The servers given with `--server` (1 to [`MAX_SERVERS`]; the CAPF
    /// port is added where none is given). Anything else is a usage error.
    pub(crate) fn parse(given: &[String]) -> Result<ServerList, Failure> {
        if given.is_empty() {
            return Err(Failure::usage("give the CAPF server with --server"));
        }
        if given.len() > MAX_SERVERS {
            return Err(Failure::usage(format!(
                "--server given {} times: a phone lists at most {MAX_SERVERS} CAPF servers",
                given.len()
            )));
        }
        let servers = given
            .iter()
            .map(|s| server_address(s))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ServerList { servers })
    }

    /// How many servers there are (at least one).
    pub(crate) fn len(&self) -> usize {
        self.servers.len()
    }

    /// The address of server `index` (counted round the list).
    pub(crate) fn get(&self, index: usize) -> &str {
        let n = self.servers.len().max(1);
        self.servers.get(index % n).map_or("", String::as_str)
    }

    /// Every address, in order.
    pub(crate) fn addresses(&self) -> &[String] {
        &self.servers
    }
}

/// One attempt: the session on the first server that answered, or none.
#[derive(Debug)]
pub(crate) struct Attempt {
    /// 1 for the first attempt of this walk.
    pub(crate) number: u32,
    /// How the session ended; a lost connection before authentication when
    /// no server could be reached.
    pub(crate) outcome: PhoneOutcome,
    /// The server the session ran on (its index in the list, its address);
    /// `None` when no server could be reached.
    pub(crate) server: Option<(usize, String)>,
    /// The servers that could not be reached, in the order tried: index
    /// and why.
    pub(crate) unreachable: Vec<(usize, String)>,
}

impl Attempt {
    /// What went wrong, for messages: the session's outcome, or why no
    /// server could be reached.
    pub(crate) fn failure_text(&self) -> String {
        if self.server.is_some() {
            return self.outcome.to_string();
        }
        match self.unreachable.as_slice() {
            [] => self.outcome.to_string(),
            [(_, why)] => why.clone(),
            all => format!(
                "no CAPF server could be reached ({})",
                all.iter()
                    .map(|(_, why)| why.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        }
    }

    /// The address of the server the session ran on, if one did.
    pub(crate) fn server_address(&self) -> Option<&str> {
        self.server.as_ref().map(|(_, address)| address.as_str())
    }
}

/// How a walk ended.
#[derive(Debug)]
pub(crate) struct WalkEnd {
    /// The last attempt.
    pub(crate) last: Attempt,
    /// Attempts made (1 when the first one was final).
    pub(crate) attempts: u32,
    /// Stopped by the user (during a session or a wait).
    pub(crate) stopped: bool,
}

/// A phone that walks its server list: what the walk asks of it.
pub(crate) trait WalkingPhone {
    /// Attempt `number` (1 for the first) begins.
    fn attempt_starts(&mut self, number: u32) -> Result<(), Failure>;

    /// Runs one session on `server` (`host:port`). An error when none
    /// started: the server could not be reached (TCP connect, TLS
    /// handshake).
    async fn session(&mut self, server: &str) -> Result<PhoneOutcome, ServerError>;

    /// `server` could not be reached (`error`); the attempt goes on with
    /// `next`, or ends when `None`.
    fn unreachable(&mut self, server: &str, error: &ServerError, next: Option<&str>);

    /// The attempt ended: records it and says whether to try again (after
    /// the retry interval).
    fn attempt_ended(&mut self, attempt: &Attempt) -> Result<bool, Failure>;

    /// Waits `interval` before the next attempt, which starts with
    /// `next_server`; `false` when the user stopped the phone meanwhile.
    async fn pause(&mut self, attempt: &Attempt, interval: Duration, next_server: &str) -> bool;
}

/// Walks `servers` from the one at `start` (counted round the list) until
/// an attempt is final, waiting `interval` between attempts.
pub(crate) async fn walk<P: WalkingPhone>(
    phone: &mut P,
    servers: &ServerList,
    start: usize,
    interval: Duration,
) -> Result<WalkEnd, Failure> {
    let n = servers.len().max(1);
    let mut first = start % n;
    let mut number: u32 = 0;
    loop {
        number = number.saturating_add(1);
        phone.attempt_starts(number)?;
        let mut unreachable = Vec::new();
        let mut ran = None;
        for k in 0..n {
            let index = (first + k) % n;
            let server = servers.get(index);
            match phone.session(server).await {
                Ok(outcome) => {
                    ran = Some((index, outcome));
                    break;
                }
                Err(error) => {
                    let next = (k + 1 < n).then(|| servers.get(index + 1));
                    phone.unreachable(server, &error, next);
                    unreachable.push((index, error.to_string()));
                }
            }
        }
        let attempt = match ran {
            Some((index, outcome)) => {
                if !outcome.is_success() {
                    // The session broke on this server: the next attempt
                    // begins with the one after it.
                    first = (index + 1) % n;
                }
                Attempt {
                    number,
                    outcome,
                    server: Some((index, servers.get(index).to_owned())),
                    unreachable,
                }
            }
            None => Attempt {
                number,
                outcome: unreachable_outcome(),
                server: None,
                unreachable,
            },
        };
        let stopped = matches!(
            &attempt.outcome,
            PhoneOutcome::Failed(PhoneFailure {
                cause: FailureCause::Aborted,
                ..
            })
        );
        let again = phone.attempt_ended(&attempt)?;
        if stopped || !again {
            return Ok(WalkEnd {
                last: attempt,
                attempts: number,
                stopped,
            });
        }
        if !phone.pause(&attempt, interval, servers.get(first)).await {
            return Ok(WalkEnd {
                last: attempt,
                attempts: number,
                stopped: true,
            });
        }
    }
}

/// The outcome of an attempt in which no server could be reached: a
/// communication failure before the session began.
fn unreachable_outcome() -> PhoneOutcome {
    PhoneOutcome::Failed(PhoneFailure {
        cause: FailureCause::ConnectionLost,
        step: PhoneStep::AwaitingAuthRequest,
        lsc_change: LscChange::Unchanged,
    })
}

/// Where phone number `phone` (0-based) starts its list of `servers`:
/// `rotate` spreads phones over the servers (phone i starts at server
/// i mod n, like a site that gives each group of phones another order);
/// otherwise every phone starts at the first.
pub(crate) fn start_for(phone: usize, servers: usize, rotate: bool) -> usize {
    if rotate { phone % servers.max(1) } else { 0 }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use bytes::Bytes;
    use capf_operations::phone::PhoneSuccess;

    use super::*;

    /// What a scripted server does when the phone comes.
    enum Answer {
        Unreachable,
        Ends(PhoneOutcome),
    }

    fn installed() -> PhoneOutcome {
        PhoneOutcome::Succeeded(PhoneSuccess::Installed {
            certificate_der: Bytes::from_static(b"lsc"),
        })
    }

    fn lost() -> PhoneOutcome {
        PhoneOutcome::Failed(PhoneFailure {
            cause: FailureCause::ConnectionLost,
            step: PhoneStep::AwaitingCertificate,
            lsc_change: LscChange::Unchanged,
        })
    }

    /// A phone that retries communication failures `retries` times; the
    /// servers answer from a script, in order of the calls.
    struct Scripted {
        answers: VecDeque<Answer>,
        tried: Vec<String>,
        retries: u32,
        pauses: Vec<String>,
    }

    impl Scripted {
        fn new(retries: u32, answers: Vec<Answer>) -> Scripted {
            Scripted {
                answers: answers.into(),
                tried: Vec::new(),
                retries,
                pauses: Vec::new(),
            }
        }
    }

    impl WalkingPhone for Scripted {
        fn attempt_starts(&mut self, _number: u32) -> Result<(), Failure> {
            Ok(())
        }

        async fn session(&mut self, server: &str) -> Result<PhoneOutcome, ServerError> {
            self.tried.push(server.to_owned());
            match self.answers.pop_front() {
                Some(Answer::Ends(outcome)) => Ok(outcome),
                _ => Err(ServerError::Connect {
                    server: server.to_owned(),
                    why: "refused".into(),
                }),
            }
        }

        fn unreachable(&mut self, _server: &str, _error: &ServerError, _next: Option<&str>) {}

        fn attempt_ended(&mut self, attempt: &Attempt) -> Result<bool, Failure> {
            Ok(attempt.outcome.is_communication_failure() && attempt.number <= self.retries)
        }

        async fn pause(&mut self, _: &Attempt, _: Duration, next_server: &str) -> bool {
            self.pauses.push(next_server.to_owned());
            true
        }
    }

    fn list(names: &[&str]) -> ServerList {
        let given: Vec<String> = names.iter().map(|s| format!("{s}:1")).collect();
        ServerList::parse(&given).unwrap()
    }

    fn run(phone: &mut Scripted, servers: &ServerList, start: usize) -> WalkEnd {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(walk(phone, servers, start, Duration::ZERO))
            .unwrap()
    }

    #[test]
    fn an_unreachable_server_is_skipped_in_the_same_attempt() {
        let servers = list(&["a", "b", "c"]);
        let mut phone = Scripted::new(3, vec![Answer::Unreachable, Answer::Ends(installed())]);
        let end = run(&mut phone, &servers, 0);
        assert_eq!(phone.tried, ["a:1", "b:1"]);
        assert_eq!(end.attempts, 1);
        assert_eq!(end.last.server_address(), Some("b:1"));
        assert_eq!(end.last.unreachable.len(), 1);
        assert!(end.last.outcome.is_success());
    }

    #[test]
    fn a_broken_session_retries_with_the_next_server() {
        let servers = list(&["a", "b", "c"]);
        let mut phone = Scripted::new(
            3,
            vec![
                Answer::Ends(lost()),
                Answer::Unreachable,
                Answer::Ends(installed()),
            ],
        );
        let end = run(&mut phone, &servers, 0);
        // a broke; the next attempt starts with b (down), then c.
        assert_eq!(phone.tried, ["a:1", "b:1", "c:1"]);
        assert_eq!(phone.pauses, ["b:1"]);
        assert_eq!(end.attempts, 2);
        assert_eq!(end.last.server_address(), Some("c:1"));
    }

    #[test]
    fn no_server_reachable_is_one_failed_attempt_and_retries_are_counted() {
        let servers = list(&["a", "b"]);
        let answers = (0..4).map(|_| Answer::Unreachable).collect();
        let mut phone = Scripted::new(1, answers);
        let end = run(&mut phone, &servers, 1);
        assert_eq!(phone.tried, ["b:1", "a:1", "b:1", "a:1"]);
        assert_eq!(phone.pauses, ["b:1"]);
        assert_eq!(end.attempts, 2);
        assert!(end.last.server.is_none());
        assert!(end.last.outcome.is_communication_failure());
        assert!(
            end.last
                .failure_text()
                .starts_with("no CAPF server could be reached"),
            "{}",
            end.last.failure_text()
        );
    }

    #[test]
    fn a_final_answer_ends_the_walk() {
        let servers = list(&["a", "b"]);
        let refused = PhoneOutcome::Failed(PhoneFailure {
            cause: FailureCause::UnknownDevice,
            step: PhoneStep::AwaitingInstruction,
            lsc_change: LscChange::Unchanged,
        });
        let mut phone = Scripted::new(3, vec![Answer::Ends(refused)]);
        let end = run(&mut phone, &servers, 0);
        assert_eq!(phone.tried, ["a:1"]);
        assert_eq!(end.attempts, 1);
        assert!(!end.stopped);
    }

    #[test]
    fn the_list_holds_one_to_five_servers() {
        assert!(ServerList::parse(&[]).is_err());
        let six: Vec<String> = (0..6).map(|i| format!("capf{i}")).collect();
        let too_many = ServerList::parse(&six).err().unwrap();
        assert_eq!(too_many.code, 2);
        let five = ServerList::parse(&six[..5]).unwrap();
        assert_eq!(five.len(), 5);
        let port = capf_server::CAPF_PORT;
        assert_eq!(five.get(0), format!("capf0:{port}"));
        assert_eq!(five.get(6), format!("capf1:{port}"));
    }

    #[test]
    fn rotation_spreads_the_phones() {
        let starts: Vec<usize> = (0..5).map(|i| start_for(i, 2, true)).collect();
        assert_eq!(starts, [0, 1, 0, 1, 0]);
        assert_eq!(start_for(3, 2, false), 0);
    }
}
