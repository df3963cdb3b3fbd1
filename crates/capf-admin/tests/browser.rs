//! The console in a real browser: Debian's headless Chromium driven
//! through chromedriver (WebDriver, plain HTTP on 127.0.0.1) by
//! fantoccini. A CAPF server and the console share one SQLite store, as in
//! `capf serve --admin-listen`:
//!
//! * a helpdesk operator logs in, finds the phone by LSC status, schedules
//!   an install for the selected row, opens the phone, generates a string
//!   and schedules the install there;
//! * a simulated phone enrolls with that string over the real CAPF
//!   protocol, and the device page then says "Install/Upgrade successful";
//! * a read-only operator sees neither the string nor any button that
//!   changes something; a form without the session's CSRF token is refused.
//!
//! Screenshots (1280x800 and phone width) go to the target directory
//! (`target/capf-admin-screenshots/`), or, with `CAPF_UPDATE_SCREENSHOTS`
//! set, to the crate's `screenshots/` that the README shows. Without
//! `/usr/bin/chromium` and `/usr/bin/chromedriver` (or what
//! `CAPF_CHROMIUM` and `CAPF_CHROMEDRIVER` name) the test says it
//! skipped, unless `CAPF_REQUIRE_BROWSER` is set (CI): then it fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use capf_admin::{AdminOptions, AdminState, password};
use capf_auth::{AuthMode, AuthString, Operation};
use capf_ca::{CapfIdentity, EcCurve, IdentityParams, KeySpec, TrustStore};
use capf_operations::phone::{Credentials, PhoneConfig, PhoneOutcome, PhoneSuccess};
use capf_operations::{
    Account, AccountName, AccountStore, Device, DeviceName, OperatorStore, ServerConfig,
    SessionStore,
};
use capf_server::{CapfServer, PhoneClient, ServerOptions};
use capf_store::SqliteStore;
use fantoccini::{Client, ClientBuilder, Locator};
use tokio::sync::oneshot;

/// Debian's Chromium and chromedriver (`CAPF_CHROMIUM` and
/// `CAPF_CHROMEDRIVER` name others).
fn chromium() -> PathBuf {
    std::env::var_os("CAPF_CHROMIUM").map_or_else(|| "/usr/bin/chromium".into(), PathBuf::from)
}

fn chromedriver() -> PathBuf {
    std::env::var_os("CAPF_CHROMEDRIVER")
        .map_or_else(|| "/usr/bin/chromedriver".into(), PathBuf::from)
}
/// Longest the whole test may run, and its steps in the browser.
const LIMIT: Duration = Duration::from_secs(240);
const STEPS_LIMIT: Duration = Duration::from_secs(180);

const HELPDESK_PASSWORD: &str = "helpdesk-pass-4711";
const READER_PASSWORD: &str = "reader-pass-1234";
/// The phone the operator works on, and one that already has an LSC.
const PHONE: &str = "SEP001122334455";
const ENROLLED: &str = "SEP0011AABBCCDD";

/// chromedriver, killed when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // chromedriver and the browsers it started are one process group
        // of their own: end them all (a browser outlives its driver).
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_driver() -> Driver {
    let port = free_port();
    let child = Command::new(chromedriver())
        .arg(format!("--port={port}"))
        .arg("--allowed-ips=127.0.0.1")
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let driver = Driver { child, port };
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not listen");
        std::thread::sleep(Duration::from_millis(100));
    }
    driver
}

async fn browser(driver: &Driver) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": chromium(),
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,800", "--hide-scrollbars", "--no-first-run"],
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a WebDriver session in Chromium")
}

fn add_account(store: &SqliteStore, name: &str, role: capf_operations::Role, pw: &str) {
    let now = SystemTime::now();
    store
        .add_account(&Account {
            name: AccountName::parse(name).unwrap(),
            role,
            password_hash: password::hash(pw).unwrap(),
            created_at: now,
            password_changed_at: now,
        })
        .unwrap();
}

fn add_device(store: &SqliteStore, name: &str, description: &str, string: Option<&str>) {
    let mut device = Device::new(DeviceName::parse(name).unwrap(), AuthMode::AuthString);
    device.description = description.to_owned();
    device.key = Some(KeySpec::Ec(EcCurve::P256));
    if let Some(s) = string {
        device.policy.operation = Operation::InstallUpgrade;
        device.policy.auth_string = Some(s.parse::<AuthString>().unwrap());
    }
    store.insert(&device, SystemTime::now()).unwrap();
}

/// A phone enrolls `name` with `string` at the CAPF server `addr`.
async fn enroll(client: &PhoneClient, addr: &str, name: &str, string: &str) {
    let credentials = Credentials::AuthString(string.parse::<AuthString>().unwrap());
    let run = tokio::time::timeout(
        Duration::from_secs(60),
        client.run(addr, PhoneConfig::new(name, credentials)),
    )
    .await
    .expect("phone session within a minute")
    .expect("phone connected");
    assert!(
        matches!(
            run.outcome,
            PhoneOutcome::Succeeded(PhoneSuccess::Installed { .. })
        ),
        "{name}: expected an install, got {:?}",
        run.outcome
    );
}

fn screenshots() -> PathBuf {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    // The committed ones change only when asked: each run shows other
    // serials and times.
    let dir = if std::env::var_os("CAPF_UPDATE_SCREENSHOTS").is_some() {
        crate_dir.join("screenshots")
    } else {
        std::env::var_os("CARGO_TARGET_DIR")
            .map_or_else(|| crate_dir.join("../../target"), PathBuf::from)
            .join("capf-admin-screenshots")
    };
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Sizes the window so that the page's viewport is `width` x `height`
/// (the window's size includes what the browser draws around the page).
async fn viewport(browser: &Client, width: u32, height: u32) {
    browser.set_window_size(width, height).await.unwrap();
    let inner = browser
        .execute("return [window.innerWidth, window.innerHeight];", vec![])
        .await
        .unwrap();
    let inner_w = u32::try_from(inner[0].as_u64().unwrap()).unwrap();
    let inner_h = u32::try_from(inner[1].as_u64().unwrap()).unwrap();
    browser
        .set_window_size(2 * width - inner_w, 2 * height - inner_h)
        .await
        .unwrap();
}

async fn shot(browser: &Client, file: &str) {
    let png = browser.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "{file} is a PNG");
    std::fs::write(screenshots().join(file), png).unwrap();
}

async fn text(browser: &Client, css: &str) -> String {
    browser
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css} on the page: {e}"))
        .text()
        .await
        .unwrap()
}

async fn count(browser: &Client, css: &str) -> usize {
    browser.find_all(Locator::Css(css)).await.unwrap().len()
}

async fn click(browser: &Client, css: &str) {
    browser
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css} on the page: {e}"))
        .click()
        .await
        .unwrap();
}

/// Clicks what navigates to another page, and waits until the old page
/// is gone (WebDriver's click may answer before the new page is loaded).
async fn submit(browser: &Client, css: &str) {
    let old = browser.find(Locator::Css("html")).await.unwrap();
    click(browser, css).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while old.attr("lang").await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "{css} did not lead to a new page"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    browser
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css("html"))
        .await
        .unwrap();
}

async fn fill(browser: &Client, css: &str, value: &str) {
    let input = browser.find(Locator::Css(css)).await.unwrap();
    input.clear().await.unwrap();
    input.send_keys(value).await.unwrap();
}

async fn log_in(browser: &Client, base: &str, name: &str, pw: &str) {
    browser.goto(&format!("{base}/devices")).await.unwrap();
    // No session: the console sends the browser to its login page.
    assert_eq!(browser.current_url().await.unwrap().path(), "/login");
    fill(browser, "#name", name).await;
    fill(browser, "#password", pw).await;
    submit(browser, "main button[type=submit]").await;
    let url = browser.current_url().await.unwrap();
    assert_eq!(
        url.path(),
        "/devices",
        "{name} logs in: {}",
        browser.source().await.unwrap()
    );
}

/// A POST of the generate-string form with this session's cookie but the
/// given CSRF token, outside the browser: the status answered.
async fn forged_post(addr: SocketAddr, cookie: &str, csrf: &str) -> u16 {
    use http_body_util::{BodyExt, Full};
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    let request = hyper::Request::post(format!("/devices/{PHONE}/generate-string"))
        .header("host", "127.0.0.1")
        .header("cookie", cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(bytes::Bytes::from(format!("csrf_token={csrf}"))))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status().as_u16();
    let _ = response.into_body().collect().await;
    status
}

#[test]
fn console_in_headless_chromium() {
    let (browser, driver) = (chromium(), chromedriver());
    if !(browser.exists() && driver.exists()) {
        let missing = format!(
            "{} or {} is missing (apt-get install chromium chromium-driver)",
            browser.display(),
            driver.display()
        );
        assert!(
            std::env::var_os("CAPF_REQUIRE_BROWSER").is_none(),
            "CAPF_REQUIRE_BROWSER is set but {missing}"
        );
        eprintln!("skipped: {missing}");
        return;
    }
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            tokio::time::timeout(LIMIT, scenario())
                .await
                .expect("the browser test ends within its limit");
        });
}

async fn scenario() {
    let dir = tempfile::tempdir().unwrap();
    let identity = CapfIdentity::generate(
        &IdentityParams {
            key: KeySpec::Ec(EcCurve::P256),
            ..IdentityParams::default()
        },
        SystemTime::now(),
    )
    .unwrap();
    let store = Arc::new(SqliteStore::open(dir.path().join("capf.sqlite3")).unwrap());
    add_account(
        &store,
        "hal",
        capf_operations::Role::Helpdesk,
        HELPDESK_PASSWORD,
    );
    add_account(
        &store,
        "rob",
        capf_operations::Role::ReadOnly,
        READER_PASSWORD,
    );
    add_device(&store, PHONE, "Front desk <lobby>", None);
    add_device(&store, ENROLLED, "Already enrolled", Some("11223344"));
    add_device(&store, "SEP00AA00BB00CC", "Other site", None);

    // The CAPF server, over the same store.
    let issuer = identity.issuer().unwrap();
    let trust = TrustStore::for_issuer(&issuer);
    let params = store.load_parameters().unwrap();
    let session_store: Arc<dyn SessionStore> = store.clone();
    let server = CapfServer::bind(
        &identity,
        issuer,
        session_store,
        ServerConfig::new(params, trust),
        ServerOptions {
            listen: vec!["127.0.0.1:0".parse().unwrap()],
            shutdown_grace: Duration::from_secs(2),
            ..ServerOptions::default()
        },
    )
    .await
    .unwrap();
    let capf_addr = server.local_addrs()[0].to_string();
    let (stop_capf, capf_stopped) = oneshot::channel::<()>();
    let capf_task = tokio::spawn(server.run(async move {
        let _ = capf_stopped.await;
    }));
    let phone = PhoneClient::new(
        capf_server::phone_client_config(vec![identity.certificate().clone()]).unwrap(),
    );
    enroll(&phone, &capf_addr, ENROLLED, "11223344").await;

    // The console, plain HTTP on the loopback.
    let state = AdminState::with_options(
        store.clone(),
        identity.certificate().der(),
        Arc::new(SystemTime::now),
        AdminOptions {
            secure_cookie: false,
            ..AdminOptions::default()
        },
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin_addr = listener.local_addr().unwrap();
    let base = format!("http://{admin_addr}");
    let (stop_admin, admin_stopped) = oneshot::channel::<()>();
    let admin_task = tokio::spawn(capf_admin::serve(
        listener,
        None,
        capf_admin::router(state),
        async move {
            let _ = admin_stopped.await;
        },
    ));

    let driver = start_driver();
    let b = browser(&driver).await;
    let steps = tokio::spawn(steps(
        b.clone(),
        Steps {
            base,
            admin_addr,
            capf_addr,
            phone,
            store,
        },
    ));
    let outcome = tokio::time::timeout(STEPS_LIMIT, steps).await;
    // Whatever happened, the browser goes, then its driver.
    let _ = tokio::time::timeout(Duration::from_secs(10), b.close()).await;
    drop(driver);
    let _ = stop_admin.send(());
    let _ = stop_capf.send(());
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(e)) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Ok(Err(e)) => panic!("the browser steps did not finish: {e}"),
        Err(_) => panic!("the browser steps did not finish within {STEPS_LIMIT:?}"),
    }
    tokio::time::timeout(Duration::from_secs(10), admin_task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    tokio::time::timeout(Duration::from_secs(20), capf_task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

/// What the browser steps work with.
struct Steps {
    base: String,
    admin_addr: SocketAddr,
    capf_addr: String,
    phone: PhoneClient,
    store: Arc<SqliteStore>,
}

async fn steps(b: Client, s: Steps) {
    let Steps {
        base,
        admin_addr,
        capf_addr,
        phone,
        store,
    } = s;
    viewport(&b, 1280, 800).await;

    // Helpdesk: find the phone by LSC status.
    log_in(&b, &base, "hal", HELPDESK_PASSWORD).await;
    fill(&b, "#text", "SEP0011").await;
    b.find(Locator::Css("#lsc_status"))
        .await
        .unwrap()
        .select_by_value("not-installed")
        .await
        .unwrap();
    submit(&b, "#find").await;
    assert!(text(&b, "#found").await.starts_with("1 phone found"));
    let table = text(&b, "table.devices").await;
    assert!(table.contains(PHONE), "{table}");
    assert!(!table.contains(ENROLLED), "{table}");
    // The description is shown as text, not markup.
    assert!(table.contains("Front desk <lobby>"), "{table}");
    b.find(Locator::Css("#lsc_status"))
        .await
        .unwrap()
        .select_by_value("installed")
        .await
        .unwrap();
    submit(&b, "#find").await;
    let table = text(&b, "table.devices").await;
    assert!(
        table.contains(ENROLLED) && !table.contains(PHONE),
        "{table}"
    );
    b.find(Locator::Css("#lsc_status"))
        .await
        .unwrap()
        .select_by_value("not-installed")
        .await
        .unwrap();
    submit(&b, "#find").await;

    // Select the row and schedule an install for it in bulk.
    click(&b, "#select-0").await;
    shot(&b, "find-and-list-1280x800.png").await;
    viewport(&b, 390, 844).await;
    shot(&b, "find-and-list-phone-width.png").await;
    viewport(&b, 1280, 800).await;
    submit(&b, "#bulk-schedule").await;
    let outcome = text(&b, ".notice").await;
    assert!(outcome.contains("1 scheduled, 0 not changed"), "{outcome}");

    // Open the phone: generate a string, schedule the install.
    b.goto(&format!(
        "{base}/devices?text=SEP0011&lsc_status=not-installed"
    ))
    .await
    .unwrap();
    submit(&b, &format!("a[href='/devices/{PHONE}']")).await;
    assert_eq!(
        b.current_url().await.unwrap().path(),
        format!("/devices/{PHONE}")
    );
    assert_eq!(text(&b, "#status").await, "Install/Upgrade pending");
    submit(&b, "#generate-string").await;
    let string = text(&b, "#generated-string").await;
    assert!(
        (4..=10).contains(&string.len()) && string.bytes().all(|c| c.is_ascii_digit()),
        "{string:?}"
    );
    b.find(Locator::Css("#schedule #operation"))
        .await
        .unwrap()
        .select_by_value("install")
        .await
        .unwrap();
    fill(&b, "#completes_by", "2099-01-01T00:00:00Z").await;
    submit(&b, "#schedule-button").await;
    assert!(text(&b, ".notice").await.starts_with("Scheduled"));
    assert_eq!(text(&b, "#operation").await, "install");

    // A form without the session's CSRF token is refused.
    let cookie = b
        .get_named_cookie(capf_admin::SESSION_COOKIE)
        .await
        .unwrap();
    let cookie = format!("{}={}", cookie.name(), cookie.value());
    assert_eq!(forged_post(admin_addr, &cookie, "").await, 403);
    assert_eq!(forged_post(admin_addr, &cookie, "00").await, 403);

    // The phone enrolls with the string.
    enroll(&phone, &capf_addr, PHONE, &string).await;
    // The schedule form answered with a redirect: reloading the page does
    // not post it again (which would schedule a new install).
    b.refresh().await.unwrap();
    assert_eq!(text(&b, "#status").await, "Install/Upgrade successful");
    b.goto(&format!("{base}/devices/{PHONE}")).await.unwrap();
    assert_eq!(text(&b, "#status").await, "Install/Upgrade successful");
    let page = b.source().await.unwrap();
    assert!(page.contains("Locally significant certificate (LSC): installed"));
    shot(&b, "device-1280x800.png").await;
    viewport(&b, 390, 844).await;
    shot(&b, "device-phone-width.png").await;
    viewport(&b, 1280, 800).await;

    // The string works once: it is no longer armed.
    assert!(!page.contains(&format!(">{string}<")));

    // Read-only: no string, no button that changes something.
    submit(&b, "header form button").await;
    assert_eq!(b.current_url().await.unwrap().path(), "/login");
    b.goto(&format!("{base}/devices/{ENROLLED}")).await.unwrap();
    assert_eq!(b.current_url().await.unwrap().path(), "/login");
    log_in(&b, &base, "rob", READER_PASSWORD).await;
    // Arm a string on the phone, so there is one the reader must not see.
    let armed = "87654321";
    store
        .modify(
            &DeviceName::parse(PHONE).unwrap(),
            &capf_operations::DeviceEdit {
                auth_string: Some(armed.parse().unwrap()),
                ..capf_operations::DeviceEdit::default()
            },
            SystemTime::now(),
        )
        .unwrap();
    b.goto(&format!("{base}/devices/{PHONE}")).await.unwrap();
    assert_eq!(text(&b, "#status").await, "Install/Upgrade successful");
    assert_eq!(text(&b, "#auth-string").await, "set (hidden)");
    assert_eq!(count(&b, "#generate-string").await, 0);
    assert_eq!(count(&b, "#schedule-button").await, 0);
    assert_eq!(count(&b, "#armed-string").await, 0);
    assert!(!b.source().await.unwrap().contains(armed));
    shot(&b, "device-read-only-1280x800.png").await;
    b.goto(&format!("{base}/devices")).await.unwrap();
    assert_eq!(count(&b, "#bulk-schedule").await, 0);
    assert_eq!(count(&b, "input[type=checkbox]").await, 0);
    assert!(!b.source().await.unwrap().contains(armed));
    b.goto(&format!("{base}/users")).await.unwrap();
    assert!(
        b.source()
            .await
            .unwrap()
            .contains("this needs the admin role")
    );
    b.goto(&format!("{base}/ca")).await.unwrap();
    assert!(text(&b, "main").await.contains("SHA-256 fingerprint"));
}
