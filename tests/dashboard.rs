//! The web dashboard in a real browser: Debian's headless Chromium driven through ChromeDriver
//! (WebDriver). An admin logs in on a narrow screen, sees a failed job, retries it and sees it
//! succeed on the local control plane; a viewer sees no retry button. The page runs under its
//! Content-Security-Policy, and a screenshot is kept in `target/test-artifacts/`.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use support::TestDir;
use support::http::{ApiServer, add_user};
use support::objects::create;
use support::testenv::TestEnv;
use support::watch::configmap;

const ADMIN: (&str, &str) = ("ada", "an admin's long password");
const VIEWER: (&str, &str) = ("val", "a viewer's long password");
const DEADLINE: Duration = Duration::from_secs(30);

/// ChromeDriver on a free loopback port, stopped when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The browser `scripts/browser` installed (scripts/test passes its paths); `None` outside
/// scripts/test when there is none, which under scripts/test is an error.
fn browser() -> Option<(String, String)> {
    let chromium =
        std::env::var("K8S_SYNC_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let driver =
        std::env::var("K8S_SYNC_CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
    let present =
        std::path::Path::new(&chromium).exists() && std::path::Path::new(&driver).exists();
    if !present {
        assert!(
            std::env::var_os("K8S_SYNC_CHROMEDRIVER").is_none(),
            "scripts/browser named {chromium} and {driver}, and one is missing"
        );
        eprintln!(
            "no Chromium and ChromeDriver (run scripts/browser): the dashboard test is skipped"
        );
        return None;
    }
    Some((chromium, driver))
}

fn start_driver(path: &str) -> Driver {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(path)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let deadline = Instant::now() + DEADLINE;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    }
}

/// A headless Chromium the size of a phone held upright.
async fn open(driver: &Driver, chromium: &str) -> Client {
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=390,844"],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("a WebDriver session")
}

async fn log_in(browser: &Client, page: &str, (user, password): (&str, &str)) {
    browser.goto(page).await.unwrap();
    browser
        .find(Locator::Id("username"))
        .await
        .unwrap()
        .send_keys(user)
        .await
        .unwrap();
    browser
        .find(Locator::Id("password"))
        .await
        .unwrap()
        .send_keys(password)
        .await
        .unwrap();
    browser
        .find(Locator::Css("#login button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .wait()
        .at_most(DEADLINE)
        .for_element(Locator::Css("#board:not([hidden])"))
        .await
        .expect("the board after logging in");
    let form = browser.find(Locator::Id("login")).await.unwrap();
    assert!(
        !form.is_displayed().await.unwrap(),
        "the login form still shows"
    );
    let board = browser.find(Locator::Id("board")).await.unwrap();
    assert!(
        board.is_displayed().await.unwrap(),
        "the board does not show"
    );
}

/// The text of the status cell of job `id`'s row, once the row is shown.
async fn job_status(browser: &Client, id: i64) -> String {
    let row = browser
        .wait()
        .at_most(DEADLINE)
        .for_element(Locator::Css(&format!("tr[data-job='{id}']")))
        .await
        .expect("the job's row");
    row.find(Locator::Css("td:nth-child(5)"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_admin_retries_a_failed_job_and_a_viewer_cannot() {
    let Some(env) = TestEnv::get() else { return };
    let Some((chromium, driver_path)) = browser() else {
        return;
    };
    // A failed job: applied as the read-only user, the replica refused it.
    let ns = env.namespace("dashboard", &["primary"]).await;
    create(
        &env.client("primary").await,
        &ns,
        configmap("settings", json!({"n": "1"})),
    )
    .await;
    let dir = TestDir::new();
    let primary = env.arg("primary");
    let fail_to_apply = || {
        support::passes::apply_as_readonly(&dir, &env, &ns).expect_code(1);
    };
    fail_to_apply();
    let failed = dir.cmd(&[
        "jobs", "list", "--status", "failed", "-o", "json", "--db", "jobs.db",
    ]);
    let failed = failed.json();
    let job = failed
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["name"] == "settings")
        .expect("a failed job")["id"]
        .as_i64()
        .unwrap();
    add_user(&dir, ADMIN.0, ADMIN.1);
    support::http::run_with_stdin(
        &dir,
        &[
            "users",
            "add",
            VIEWER.0,
            "--password-stdin",
            "--role",
            "viewer",
            "--db",
            "jobs.db",
        ],
        &format!("{}\n", VIEWER.1),
    )
    .expect_code(0);
    // Served with an admin kubeconfig under the same replica name: the retry can succeed.
    let admin = format!("ro={}", env.kubeconfig("replica-2").display());
    let server = ApiServer::start(
        &dir,
        &[
            "--primary",
            &primary,
            "--source-name",
            "primary",
            "--replica",
            &admin,
        ],
        &[],
    );
    let page = format!("http://{}/", server.addr);
    let index = server.get("/");
    let policy = index
        .header("content-security-policy")
        .unwrap_or_default()
        .to_string();
    assert!(
        policy.contains("default-src 'none'") && policy.contains("script-src 'self'"),
        "{index}"
    );

    let driver = start_driver(&driver_path);
    let browser = open(&driver, &chromium).await;
    log_in(&browser, &page, ADMIN).await;
    assert_eq!(job_status(&browser, job).await, "failed");
    // Usable on a narrow screen: the page itself does not scroll sideways (tables do, inside).
    let overflow = browser
        .execute(
            "return document.documentElement.scrollWidth - window.innerWidth;",
            vec![],
        )
        .await
        .unwrap();
    assert!(
        overflow.as_i64().unwrap() <= 0,
        "the page is wider than the screen by {overflow}"
    );
    let artifacts = support::repo_root().join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    std::fs::write(
        artifacts.join("dashboard-failed-job.png"),
        browser.screenshot().await.unwrap(),
    )
    .unwrap();
    browser
        .find(Locator::Css(&format!("tr[data-job='{job}'] button.retry")))
        .await
        .expect("a retry button on a failed job")
        .click()
        .await
        .unwrap();
    let deadline = Instant::now() + DEADLINE;
    loop {
        let status = job_status(&browser, job).await;
        if status == "succeeded" {
            break;
        }
        assert!(Instant::now() < deadline, "the job is still {status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    std::fs::write(
        artifacts.join("dashboard.png"),
        browser.screenshot().await.unwrap(),
    )
    .unwrap();
    // The status filter: no failed job left, the retried one among the succeeded.
    let filter = browser.find(Locator::Id("status")).await.unwrap();
    filter.clone().select_by_value("failed").await.unwrap();
    let deadline = Instant::now() + DEADLINE;
    while !browser
        .find_all(Locator::Css(&format!("tr[data-job='{job}']")))
        .await
        .unwrap()
        .is_empty()
    {
        assert!(
            Instant::now() < deadline,
            "a succeeded job among the failed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    filter.select_by_value("succeeded").await.unwrap();
    assert_eq!(job_status(&browser, job).await, "succeeded");
    browser.set_window_size(1280, 720).await.unwrap();
    browser
        .execute("window.scrollTo(0, 0);", vec![])
        .await
        .unwrap();
    std::fs::write(
        artifacts.join("dashboard-wide.png"),
        browser.screenshot().await.unwrap(),
    )
    .unwrap();
    let replica = env.client("replica-2").await;
    assert!(
        support::objects::get(&replica, &ns, "configmaps", "settings")
            .await
            .is_some()
    );
    let watchers_or_replicas = browser
        .find(Locator::Css("#replicas tr[data-replica='ro']"))
        .await;
    assert!(watchers_or_replicas.is_ok(), "the replica's row");
    browser
        .find(Locator::Id("logout"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .wait()
        .at_most(DEADLINE)
        .for_element(Locator::Css("#login:not([hidden])"))
        .await
        .unwrap();

    // A viewer sees a failed job but no retry button.
    let primary_client = env.client("primary").await;
    create(&primary_client, &ns, configmap("later", json!({"n": "2"}))).await;
    fail_to_apply();
    let later = dir.cmd(&[
        "jobs", "list", "--status", "failed", "-o", "json", "--db", "jobs.db",
    ]);
    let later = later.json()[0]["id"].as_i64().expect("the new failed job");
    log_in(&browser, &page, VIEWER).await;
    assert_eq!(job_status(&browser, later).await, "failed");
    let buttons = browser
        .find_all(Locator::Css("button.retry"))
        .await
        .unwrap();
    assert!(
        buttons.is_empty(),
        "a viewer has {} retry buttons",
        buttons.len()
    );
    let who = browser
        .find(Locator::Id("whoami"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(who, "val (viewer)");
    browser.close().await.unwrap();
}
