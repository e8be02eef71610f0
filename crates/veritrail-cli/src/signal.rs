//! Stopping a server cleanly: SIGTERM or Ctrl-C.

/// Resolves on SIGTERM or Ctrl-C.
pub(crate) async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Counts SIGHUPs into `tx` (each one bumps the value) until the task is dropped. The handler
/// is installed by the caller ([`hangup_signal`]) so that a SIGHUP right after start-up is
/// not the default action (which ends the process).
#[cfg(feature = "proxy")]
pub(crate) async fn hangups(mut signal: Option<HangupSignal>, tx: tokio::sync::watch::Sender<u64>) {
    #[cfg(unix)]
    if let Some(signal) = signal.as_mut() {
        while signal.recv().await.is_some() {
            tx.send_modify(|n| *n += 1);
        }
    }
    let _ = (&mut signal, &tx);
    std::future::pending::<()>().await
}

/// The SIGHUP handler.
#[cfg(all(feature = "proxy", unix))]
pub(crate) type HangupSignal = tokio::signal::unix::Signal;
/// No SIGHUP here.
#[cfg(all(feature = "proxy", not(unix)))]
pub(crate) type HangupSignal = ();

/// Installs the SIGHUP handler (`None` where there is none).
#[cfg(feature = "proxy")]
pub(crate) fn hangup_signal() -> Option<HangupSignal> {
    #[cfg(unix)]
    {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()
    }
    #[cfg(not(unix))]
    {
        None
    }
}
