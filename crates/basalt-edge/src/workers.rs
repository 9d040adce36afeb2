//! Thread-per-core serving: OS threads that each drive their own current-thread tokio
//! runtime, onto which every HTTP listener places one accept loop on its own SO_REUSEPORT
//! socket, so a connection, its requests and their upstream connections stay on one thread
//! (no work stealing, no cross-thread wake-ups per request).

use std::cell::Cell;
use std::net::SocketAddr;

use tokio::runtime::Handle;
use tokio::sync::oneshot;

thread_local! {
    /// 1-based index of the worker running on this thread; 0 off the workers.
    static WORKER: Cell<usize> = const { Cell::new(0) };
}

/// The worker this thread is (1..=N), or 0 on any other thread.
pub(crate) fn current() -> usize {
    WORKER.with(Cell::get)
}

/// How many workers `workers = n` asks for: 0 means one per available core.
pub(crate) fn resolve(n: usize) -> usize {
    match n {
        0 => std::thread::available_parallelism().map_or(1, |p| p.get()),
        n => n,
    }
}

/// Running worker threads; dropping this ends them (and the tasks left on them).
pub(crate) struct Workers {
    handles: Vec<Handle>,
    /// Each thread blocks on its receiver; dropping a sender lets that thread end.
    _stops: Vec<oneshot::Sender<()>>,
}

impl Workers {
    /// Starts `n` workers (n >= 2; with one the shared runtime serves as before).
    pub fn start(n: usize) -> std::io::Result<Workers> {
        let mut handles = Vec::with_capacity(n);
        let mut stops = Vec::with_capacity(n);
        for i in 0..n {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            handles.push(rt.handle().clone());
            let (stop, stopped) = oneshot::channel::<()>();
            stops.push(stop);
            std::thread::Builder::new()
                .name(format!("edge-worker-{}", i + 1))
                .spawn(move || {
                    WORKER.with(|w| w.set(i + 1));
                    rt.block_on(async {
                        let _ = stopped.await;
                    });
                })?;
        }
        Ok(Workers {
            handles,
            _stops: stops,
        })
    }

    pub fn handles(&self) -> &[Handle] {
        &self.handles
    }
}

/// Binds `count` listening sockets on `address`; with more than one they share the port
/// through SO_REUSEPORT (the kernel spreads new connections over them). A port of 0 is
/// chosen by the first bind and reused by the others.
pub(crate) fn bind(
    address: SocketAddr,
    count: usize,
) -> std::io::Result<Vec<std::net::TcpListener>> {
    use socket2::{Domain, Protocol, Socket, Type};
    let mut out = Vec::with_capacity(count);
    let mut address = address;
    for _ in 0..count.max(1) {
        let socket = Socket::new(
            Domain::for_address(address),
            Type::STREAM,
            Some(Protocol::TCP),
        )?;
        socket.set_reuse_address(true)?;
        if count > 1 {
            socket.set_reuse_port(true)?;
        }
        socket.set_tcp_nodelay(true)?;
        socket.set_nonblocking(true)?;
        socket.bind(&address.into())?;
        socket.listen(4096)?;
        let listener: std::net::TcpListener = socket.into();
        address = listener.local_addr()?;
        out.push(listener);
    }
    Ok(out)
}
