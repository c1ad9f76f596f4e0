//! Who a request acts for, from where and by which protocol, for the audit trail
//! (docs/operations.md): set once per request by the router (and by the S3 adapter when a
//! signature names the user) and read by the metadata store when it records an audited
//! change in the change's own transaction, so no call between them has to carry it.

use std::cell::RefCell;
use std::future::Future;

tokio::task_local! {
    static REQUEST: RefCell<Context>;
}

/// The request context of an audited change.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Context {
    /// The authenticated user (`None`: anonymous, or a change of the server itself).
    pub actor: Option<String>,
    /// The client's address.
    pub client: Option<String>,
    /// `webdav`, `s3`, `share`, `api`, `app`, `cli`; `system` for the server's own work.
    pub protocol: &'static str,
}

/// Runs `f` with `ctx` as its request context (also in the tasks `carry` hands it to).
pub async fn scope<F: Future>(ctx: Context, f: F) -> F::Output {
    REQUEST.scope(RefCell::new(ctx), f).await
}

/// `f` in `ctx` when there is one, else as it is.
pub async fn scope_if<F: Future>(ctx: Option<Context>, f: F) -> F::Output {
    match ctx {
        Some(ctx) => scope(ctx, f).await,
        None => f.await,
    }
}

/// The current request context; the server's own when there is none.
pub fn current() -> Context {
    REQUEST.try_with(|c| c.borrow().clone()).unwrap_or(Context {
        actor: None,
        client: None,
        protocol: "system",
    })
}

/// Names the protocol of the current request (the router, once it has routed it).
pub fn set_protocol(protocol: &'static str) {
    let _ = REQUEST.try_with(|c| c.borrow_mut().protocol = protocol);
}

/// Names the user of the current request (once authenticated).
pub fn set_actor(user: &str) {
    let _ = REQUEST.try_with(|c| c.borrow_mut().actor = Some(user.to_string()));
}

/// `f` with the current request context, for a task spawned on the request's behalf.
pub fn carry<F: Future>(f: F) -> impl Future<Output = F::Output> {
    let ctx = current();
    async move { scope(ctx, f).await }
}
