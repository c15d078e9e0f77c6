use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Duration;

/// Manages a collection of threads.
///
/// A new thread is created every time all the existing threads are busy.
/// Any idle thread beyond `MIN_THREADS` dies after a few seconds.
///
/// (asu-builder patch: rewritten. The original queued a task whenever any
/// thread was idle, even when several tasks came in at once for one idle
/// thread; with connections as tasks, which last as long as the client
/// stays, a new connection then waited until some other connection ended.
/// Here a task is queued only for a thread that is idle and not yet
/// claimed by an earlier task; spawning a thread can fail without a panic.)
pub struct TaskPool {
    sharing: Arc<Sharing>,
}

type Task = Box<dyn FnMut() + Send>;

struct Sharing {
    state: Mutex<State>,
    // notified whenever a task is added to `State::todo`
    condvar: Condvar,
}

struct State {
    todo: VecDeque<Task>,
    // threads waiting for a task
    idle: usize,
    // threads alive
    total: usize,
    // the pool was dropped: idle threads exit
    closed: bool,
}

/// Minimum number of threads kept alive when idle.
const MIN_THREADS: usize = 4;

/// An idle thread beyond `MIN_THREADS` exits after this long.
const IDLE_EXIT: Duration = Duration::from_secs(5);

/// Connection threads only parse heads and copy bytes; a small stack keeps
/// a thousand keep-alive connections cheap.
const STACK_SIZE: usize = 256 * 1024;

impl TaskPool {
    pub fn new() -> TaskPool {
        let pool = TaskPool {
            sharing: Arc::new(Sharing {
                state: Mutex::new(State {
                    todo: VecDeque::new(),
                    idle: 0,
                    total: 0,
                    closed: false,
                }),
                condvar: Condvar::new(),
            }),
        };

        for _ in 0..MIN_THREADS {
            // Best effort: the pool also grows on demand.
            let _ = pool.add_thread(None);
        }

        pool
    }

    /// Executes a function in a thread: an idle one if there is one not yet
    /// claimed, else a new one. When the OS refuses a new thread the
    /// function is dropped unrun and the error returned.
    pub fn spawn(&self, code: Task) -> io::Result<()> {
        let mut state = lock(&self.sharing.state);
        if state.idle > state.todo.len() {
            state.todo.push_back(code);
            self.sharing.condvar.notify_one();
            return Ok(());
        }
        drop(state);
        self.add_thread(Some(code))
    }

    fn add_thread(&self, initial: Option<Task>) -> io::Result<()> {
        let sharing = self.sharing.clone();
        lock(&sharing.state).total += 1;
        let spawned = thread::Builder::new()
            .name("http-conn".into())
            .stack_size(STACK_SIZE)
            .spawn({
                let sharing = sharing.clone();
                move || run(&sharing, initial)
            });
        if spawned.is_err() {
            lock(&sharing.state).total -= 1;
        }
        spawned.map(|_| ())
    }
}

/// A pool thread: its first task, then queued ones until idle too long.
fn run(sharing: &Sharing, initial: Option<Task>) {
    // Keeps `total` right however the thread ends, a panic included.
    struct Alive<'a>(&'a Sharing);
    impl Drop for Alive<'_> {
        fn drop(&mut self) {
            lock(&self.0.state).total -= 1;
        }
    }
    let _alive = Alive(sharing);

    if let Some(mut task) = initial {
        task();
    }
    loop {
        let mut task = {
            let mut state = lock(&sharing.state);
            state.idle += 1;
            loop {
                if let Some(task) = state.todo.pop_front() {
                    state.idle -= 1;
                    break task;
                }
                let (next, timeout) = sharing
                    .condvar
                    .wait_timeout(state, IDLE_EXIT)
                    .unwrap_or_else(|e| e.into_inner());
                state = next;
                let surplus = timeout.timed_out() && state.total > MIN_THREADS;
                if state.todo.is_empty() && (surplus || state.closed) {
                    state.idle -= 1;
                    return;
                }
            }
        };
        task();
    }
}

fn lock(m: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Drop for TaskPool {
    fn drop(&mut self) {
        // Busy threads finish their task first, then exit too.
        lock(&self.sharing.state).closed = true;
        self.sharing.condvar.notify_all();
    }
}
