//! Headless Chromium (Debian's `chromium` and `chromium-driver`) driven over WebDriver with
//! fantoccini: what the browser tests and the view's benchmark (`benches/serve_browser.rs`)
//! share.
#![allow(dead_code)] // the tests and the benchmark each use a part

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

/// Chromium under chromedriver, with a folder for its screenshots.
pub(crate) struct Browser {
    driver: Child,
    pub(crate) client: Client,
    shots: PathBuf,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Browser {
    /// Starts chromedriver on a free port and opens a headless Chromium session.
    pub(crate) async fn start(test: &str) -> Browser {
        let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join("serve-browser")
            .join(test);
        Self::start_in(&shots).await
    }

    /// [`start`](Self::start) with the screenshots in `shots`.
    pub(crate) async fn start_in(shots: &Path) -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start chromedriver ({e}): the browser tests need Debian's chromium \
                     and chromium-driver (apt-get install -y chromium chromium-driver; .ci/run \
                     installs them)"
                )
            });
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not start listening"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut options = json!({"args": [
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--window-size=1280,1000", "--no-first-run", "--disable-extensions",
        ]});
        if std::path::Path::new("/usr/bin/chromium").exists() {
            options["binary"] = json!("/usr/bin/chromium");
        }
        let mut caps = serde_json::Map::new();
        caps.insert("goog:chromeOptions".into(), options);
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a Chromium session");
        std::fs::create_dir_all(shots).unwrap();
        Browser {
            driver,
            client,
            shots: shots.to_path_buf(),
        }
    }

    pub(crate) async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap();
    }

    /// Saves a screenshot of the window as `name.png`.
    pub(crate) async fn shot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(self.shots.join(format!("{name}.png")), png).unwrap();
    }

    pub(crate) async fn text(&self, css: &str) -> String {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .text()
            .await
            .unwrap()
    }

    /// Types `text` into the field `css` (cleared first).
    pub(crate) async fn fill(&self, css: &str, text: &str) {
        let field = self.client.find(Locator::Css(css)).await.unwrap();
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    pub(crate) async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .click()
            .await
            .unwrap();
    }

    /// Presses `key` (Tab, Enter…) on whatever has the focus, as a keyboard would.
    pub(crate) async fn press(&self, key: fantoccini::key::Key) {
        use fantoccini::actions::{InputSource, KeyAction, KeyActions};
        let key: char = key.into();
        let actions = KeyActions::new("keyboard".into())
            .then(KeyAction::Down { value: key })
            .then(KeyAction::Up { value: key });
        self.client.perform_actions(actions).await.unwrap();
    }

    /// The focused element's `id` (or its class when it has none).
    pub(crate) async fn focused(&self) -> String {
        let element = self.client.active_element().await.unwrap();
        match element.attr("id").await.unwrap() {
            Some(id) if !id.is_empty() => id,
            _ => element.attr("class").await.unwrap().unwrap_or_default(),
        }
    }

    /// The page's own measure of its last navigation, from its start to the end of `load`.
    pub(crate) async fn load_ms(&self) -> f64 {
        let v = self
            .client
            .execute(
                "const n = performance.getEntriesByType('navigation')[0]; \
                 return n.loadEventEnd - n.startTime;",
                vec![],
            )
            .await
            .unwrap();
        v.as_f64().unwrap()
    }

    /// Waits until the address holds both `a` and `b` and the page has loaded.
    pub(crate) async fn wait_for_url(&self, a: &str, b: &str) {
        self.wait_for(|url| url.contains(a) && url.contains(b))
            .await;
    }

    /// Waits until the address's path is `path` and the page has loaded.
    pub(crate) async fn wait_for_path(&self, path: &str) {
        self.wait_for(|url| {
            let rest = url.splitn(4, '/').nth(3).unwrap_or_default();
            rest.split(['?', '#']).next() == path.strip_prefix('/')
        })
        .await;
    }

    async fn wait_for(&self, arrived: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let url = self.client.current_url().await.unwrap().to_string();
            if arrived(&url) {
                let state = self
                    .client
                    .execute("return document.readyState;", vec![])
                    .await
                    .unwrap();
                if state == "complete" {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "still at {url}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The `data-index` of every row of the events table, top to bottom.
    pub(crate) async fn row_indexes(&self) -> Vec<u64> {
        let mut out = Vec::new();
        for row in self
            .client
            .find_all(Locator::Css("#events tbody tr"))
            .await
            .unwrap()
        {
            out.push(
                row.attr("data-index")
                    .await
                    .unwrap()
                    .unwrap()
                    .parse()
                    .unwrap(),
            );
        }
        out
    }

    /// Pins `key`, presses Verify, and waits for the verdict: its state (`verified` or
    /// `failed`), its text, and how long the check took in the page (ms).
    pub(crate) async fn verify(&self, key: &str) -> (String, String, f64) {
        self.fill("#pinned-key", key).await;
        self.click("#pin").await;
        self.wait_state(&["pinned", "failed"]).await;
        self.click("#verify-button").await;
        let state = self.wait_state(&["verified", "failed"]).await;
        let result = self
            .client
            .find(Locator::Id("verify-result"))
            .await
            .unwrap();
        let ms = result
            .attr("data-ms")
            .await
            .unwrap()
            .unwrap()
            .parse()
            .unwrap();
        (state, result.text().await.unwrap(), ms)
    }

    pub(crate) async fn wait_state(&self, states: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let result = self
                .client
                .find(Locator::Id("verify-result"))
                .await
                .unwrap();
            if let Some(state) = result.attr("data-state").await.unwrap()
                && states.contains(&state.as_str())
            {
                return state;
            }
            assert!(
                Instant::now() < deadline,
                "no verdict in time: {:?}",
                result.text().await
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
