/* The runtime's native core (issue 25): the hot path of a point on CPU workers, out of Python.
 *
 * Python prepared everything a point needs (the schedule, the model inputs, dmda's predictions); here one issuer
 * thread releases the batches at their due times and applies the backlog and time-cap rules, worker threads pinned
 * to their cores take their next task themselves and run ONNX Runtime through its C API, and a completion
 * (records, the batch's next parts, the policy's bookkeeping) is a few hundred nanoseconds under one spin lock.
 * Python drains the finished batches every millisecond, off the hot path: the judge, the progress bar, the
 * performance models (pushed back here as tables), and answers the issuer's one question (extend the point?).
 *
 * ONNX Runtime is the library the onnxruntime wheel ships (libonnxruntime.so, loaded with dlopen, its path given
 * by Python): no header is needed to build this module. The few entries of its C API table used here are declared
 * below by their position in that table (OrtApi is append-only across releases; version 13 is asked for, which
 * every supported release has).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <dlfcn.h>
#include <errno.h>
#include <linux/futex.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* ---- ONNX Runtime's C API: opaque handles and the table entries used (their slot in OrtApi) ---------------- */
typedef struct OrtStatus OrtStatus;
typedef struct OrtEnv OrtEnv;
typedef struct OrtSession OrtSession;
typedef struct OrtSessionOptions OrtSessionOptions;
typedef struct OrtValue OrtValue;
typedef struct OrtMemoryInfo OrtMemoryInfo;
typedef struct OrtRunOptions OrtRunOptions;
typedef struct {
    const void *const *(*get_api)(uint32_t version);
    const char *(*get_version_string)(void);
} ApiBase;

#define API_VERSION 13
enum {
    S_GetErrorMessage = 2,
    S_CreateEnv = 3,
    S_CreateSession = 7,
    S_Run = 9,
    S_CreateSessionOptions = 10,
    S_SetSessionLogSeverityLevel = 22,
    S_SetSessionGraphOptimizationLevel = 23,
    S_SetIntraOpNumThreads = 24,
    S_SetInterOpNumThreads = 25,
    S_CreateTensorWithDataAsOrtValue = 49,
    S_GetTensorMutableData = 51,
    S_GetTensorElementType = 60,
    S_GetDimensionsCount = 61,
    S_GetDimensions = 62,
    S_GetTensorTypeAndShape = 65,
    S_CreateCpuMemoryInfo = 69,
    S_ReleaseEnv = 92,
    S_ReleaseStatus = 93,
    S_ReleaseMemoryInfo = 94,
    S_ReleaseSession = 95,
    S_ReleaseValue = 96,
    S_ReleaseTensorTypeAndShapeInfo = 99,
    S_ReleaseSessionOptions = 100,
    S_AddFreeDimensionOverrideByName = 124,
    S_AddSessionConfigEntry = 130,
};
static const void *const *api;
static OrtEnv *env;
static OrtMemoryInfo *cpu_info;
#define CALL(slot, type) ((type)api[slot])
typedef OrtStatus *(*CreateEnvFn)(int, const char *, OrtEnv **);
typedef OrtStatus *(*CreateSessionFn)(const OrtEnv *, const char *, const OrtSessionOptions *, OrtSession **);
typedef OrtStatus *(*RunFn)(OrtSession *, const OrtRunOptions *, const char *const *, const OrtValue *const *,
                            size_t, const char *const *, size_t, OrtValue **);
typedef OrtStatus *(*CreateOptionsFn)(OrtSessionOptions **);
typedef OrtStatus *(*SetIntFn)(OrtSessionOptions *, int);
typedef OrtStatus *(*ConfigEntryFn)(OrtSessionOptions *, const char *, const char *);
typedef OrtStatus *(*FreeDimFn)(OrtSessionOptions *, const char *, int64_t);
typedef OrtStatus *(*CreateTensorFn)(const OrtMemoryInfo *, void *, size_t, const int64_t *, size_t, int,
                                     OrtValue **);
typedef OrtStatus *(*CpuInfoFn)(int, int, OrtMemoryInfo **);
typedef const char *(*ErrorMessageFn)(const OrtStatus *);
typedef struct OrtTensorTypeAndShapeInfo OrtShape;
typedef OrtStatus *(*DataFn)(OrtValue *, void **);
typedef OrtStatus *(*ShapeOfFn)(const OrtValue *, OrtShape **);
typedef OrtStatus *(*ElementTypeFn)(const OrtShape *, int *);
typedef OrtStatus *(*DimsCountFn)(const OrtShape *, size_t *);
typedef OrtStatus *(*DimsFn)(const OrtShape *, int64_t *, size_t);
typedef void (*ReleaseFn)(void *);

static void release(int slot, void *handle) {
    if (handle) CALL(slot, ReleaseFn)(handle);
}

/* An ORT status as a malloc'ed message (NULL: success); the status is released. */
static char *status_text(OrtStatus *status) {
    if (status == NULL) return NULL;
    const char *msg = CALL(S_GetErrorMessage, ErrorMessageFn)(status);
    char *out = strdup(msg ? msg : "ONNX Runtime failed");
    release(S_ReleaseStatus, status);
    return out;
}

static int raise_status(OrtStatus *status, const char *what) {
    char *msg = status_text(status);
    if (msg == NULL) return 0;
    PyErr_Format(PyExc_RuntimeError, "%s: %s", what, msg);
    free(msg);
    return -1;
}

/* ---- clocks, waits, lock ----------------------------------------------------------------------------------- */
static inline int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void sleep_until(int64_t t) {
    struct timespec ts = {(time_t)(t / 1000000000LL), (long)(t % 1000000000LL)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

static void futex_wait(int32_t *word, int32_t seen, int64_t timeout_ns) {
    struct timespec ts = {(time_t)(timeout_ns / 1000000000LL), (long)(timeout_ns % 1000000000LL)};
    syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, seen, timeout_ns > 0 ? &ts : NULL, NULL, 0);
}

static void futex_wake(int32_t *word) { syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0); }

/* A spin lock: every critical section here is a few hundred nanoseconds, and a thread that sleeps on a contended
 * mutex wakes 20-40 us later on the machines measured. The holder may have been preempted, by the waiter itself:
 * after spinning about 10 us the waiter sleeps 50 us at a time, long enough for the holder to run. (The issuer runs at
 * SCHED_FIFO, where a yield lets no ordinary thread run; with 2 us sleeps it kept an ordinary holder off their
 * shared core for 0.95 s, until the kernel's 5 % share for ordinary threads let it finish: batches released
 * 0.95 s late, in a branch plan at 5 q/s and in the test suite.) */
typedef struct { int32_t held; } SpinLock;

static inline void lock(SpinLock *l) {
    unsigned n = 0;
    for (;;) {
        if (!__atomic_load_n(&l->held, __ATOMIC_RELAXED) && !__atomic_exchange_n(&l->held, 1, __ATOMIC_ACQUIRE))
            return;
        if (++n < 8192) continue;  /* ~10 us: a running holder is done by then */
        struct timespec ts = {0, 50000};
        nanosleep(&ts, NULL);
    }
}

static inline void unlock(SpinLock *l) { __atomic_store_n(&l->held, 0, __ATOMIC_RELEASE); }

/* A growable FIFO of tasks (k * parts + part), touched under the core's lock only. */
typedef struct { int64_t *items; int64_t head, count, cap; } Fifo;

/* Room for `cap` tasks (made before a point starts, so that no push allocates on the hot path). */
static int fifo_reserve(Fifo *q, int64_t cap) {
    if (q->cap >= cap) return 0;
    int64_t *items = malloc(sizeof(int64_t) * cap);
    if (!items) return -1;
    for (int64_t i = 0; i < q->count; i++) items[i] = q->items[(q->head + i) % q->cap];
    free(q->items);
    q->items = items, q->head = 0, q->cap = cap;
    return 0;
}

static int fifo_push(Fifo *q, int64_t task) {
    if (q->count == q->cap && fifo_reserve(q, q->cap ? 2 * q->cap : 256) < 0) return -1;
    q->items[(q->head + q->count++) % q->cap] = task;
    return 0;
}

static int fifo_push_front(Fifo *q, int64_t task) {
    if (fifo_push(q, task) < 0) return -1;  /* grows it if needed; then the new last item moves to the front */
    q->count--;
    q->head = (q->head + q->cap - 1) % q->cap;
    q->items[q->head] = task;
    q->count++;
    return 0;
}

static int64_t fifo_pop(Fifo *q) {
    if (!q->count) return -1;
    int64_t task = q->items[q->head];
    q->head = (q->head + 1) % q->cap, q->count--;
    return task;
}

/* A binary heap of tasks by key (the opara policy: the earliest batch first, then the plan's launch order), touched
 * under the core's lock only. */
typedef struct { int64_t key, task; } HeapItem;
typedef struct { HeapItem *items; int64_t count, cap; } Heap;

static int heap_reserve(Heap *h, int64_t cap) {
    if (h->cap >= cap) return 0;
    HeapItem *items = realloc(h->items, sizeof(HeapItem) * cap);
    if (!items) return -1;
    h->items = items, h->cap = cap;
    return 0;
}

static int heap_push(Heap *h, int64_t key, int64_t task) {
    if (h->count == h->cap && heap_reserve(h, h->cap ? 2 * h->cap : 256) < 0) return -1;
    int64_t i = h->count++;
    while (i > 0 && h->items[(i - 1) / 2].key > key) {
        h->items[i] = h->items[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h->items[i] = (HeapItem){key, task};
    return 0;
}

static int64_t heap_pop(Heap *h) {
    if (!h->count) return -1;
    int64_t task = h->items[0].task;
    HeapItem last = h->items[--h->count];
    int64_t i = 0;
    for (;;) {
        int64_t child = 2 * i + 1;
        if (child >= h->count) break;
        if (child + 1 < h->count && h->items[child + 1].key < h->items[child].key) child++;
        if (h->items[child].key >= last.key) break;
        h->items[i] = h->items[child];
        i = child;
    }
    if (h->count) h->items[i] = last;
    return task;
}

/* ---- the core ---------------------------------------------------------------------------------------------- */
enum { POLICY_DMDA = 0, POLICY_EAGER = 1, POLICY_ROUNDROBIN = 2, POLICY_FIXED = 3, POLICY_OPARA = 4 };
enum { STOP_NONE = 0, STOP_BACKLOG = 1, STOP_TIME_CAP = 2, STOP_ASKED = 3, STOP_MEMORY = 4 };
#define CALIBRATION_SAMPLES 10
#define WINDOW 1000 /* perfmodel.WINDOW */
#define OUTLIER_STDS 5 /* perfmodel.OUTLIER_STDS */
#define MODEL_FIELDS 7 /* perfmodel.Stats: count, mean, m2, first dropped, outliers in a row, their mean, m2 */
#define MAX_IO 64
#define MAX_BATCH 65536   /* queries in a batch: bounds the performance models' table */
#define MAX_SLOTS 65536   /* tensors of a model */
#define MAX_WORKERS 1024

typedef struct Core Core;

/* A batch's state, one cache line each: the workers completing neighbouring batches do not share lines. */
typedef struct {
    int64_t partsleft, running;
    char state;  /* 0 not released, 1 open, 2 closed (finished or abandoned), 3 closed, values to free */
    char failed;
} __attribute__((aligned(64))) Batch;

typedef struct {
    Core *core;
    int index, kind, ncores, cores[256];  /* kind: its performance models' index (workers of one kind share) */
    OrtSession **sessions;  /* one per part */
    pthread_t thread;
    int started;
    Fifo queue;
    Heap ordered;  /* the opara policy's queue instead of `queue` */
    OrtValue **dropped;  /* tensors to free once the lock is released: a task's outputs and a batch's values */
    int32_t bell, sleeping;  /* bell: incremented with every task handed over (a futex word) */
    int busy;  /* running a task */
    double expected_free, pending;  /* dmda: seconds from the point's t0 */
} Worker;

struct Core {
    SpinLock lock;
    int nworkers, nparts, nslots, ninputs;  /* slots: tensors; slots < ninputs are the model's inputs */
    Worker *workers;
    /* the part graph */
    int *ndeps, **succ, *nsucc;
    int *rank;  /* part -> its place in the plan's launch order (the opara policy's queues) */
    int *nin, *nout, **in_slot, **out_slot;
    char ***in_names, ***out_names;
    char *consumed;  /* slot -> read by a later part (else a final output, released at once) */
    /* model inputs: buffers (kept by Python), element type, shape without the batch dimension */
    void **in_data;
    int *in_type, *in_rank, *in_whole;  /* whole: a fixed-shape input given whole to every batch (a threshold) */
    int64_t **in_shape;
    size_t *in_row_bytes;  /* bytes per row; a whole input's bytes */
    int64_t max_size;
    OrtValue **in_values;  /* (worker, size, input) -> a tensor over the leading rows (make_input): one per worker,
                            * as ONNX Runtime copies a feed's reference count on every run */
    /* the point */
    int64_t batches, t0, release_limit, max_backlog, time_cap_ns, spin_ns;
    int policy, fixed_worker;
    int64_t *release_ns, *sizes, *actual_ns, *end_ns, *finished, *task_start, *task_end;
    int32_t *task_worker;
    int64_t *depleft;
    Batch *batch;  /* per batch, one cache line: what its completions update */
    double *predicted;
    OrtValue **values;  /* (batch, slot) */
    int64_t released, closed, nfinished;
    int64_t inflight;  /* tasks taken by workers and not completed: a point is freed only once none is left */
    int releasing, stop, stop_unfinished, asking, issuing, closing;
    int keep;  /* tests: every output kept until the next point (output() reads them) */
    int npoint;  /* a point was started and not yet ended */
    int py_wants_news;  /* Python waits for a finished batch: the worker that finishes one wakes it */
    int64_t stop_at_ns;
    Fifo central;
    int64_t rr;
    /* the performance models, StarPU's: (size, part, kind) -> count, mean, m2 (Welford), first sample dropped,
       outliers in a row with their mean and m2 */
    int nkinds;
    double *model;  /* MODEL_FIELDS doubles per entry */
    /* errors: (batch, part, message) */
    int64_t nerrors, caperrors;
    int64_t *error_task;
    char **error_text;
    /* the issuer and the Python waiter */
    pthread_t issuer;
    int issuer_started, nissuer_cores, issuer_cores[256];  /* cores left by the workers: the issuer's, and it polls */
    pthread_mutex_t ev_mutex;
    pthread_cond_t ev_cond;  /* Python's waiter: point over, the issuer asking, a stop */
    pthread_cond_t go_cond;  /* the issuer: a point to release, or an answer */
    int64_t go_seq, answered_limit;
    int64_t slept_ns;  /* when the issuer last slept */
    int32_t issuer_bell;  /* rung to end the issuer's sleep (a stop) */
    int answer_ready;
    char issuer_level[48];
};

static void signal_python(Core *c) {
    pthread_mutex_lock(&c->ev_mutex);
    pthread_cond_broadcast(&c->ev_cond);
    pthread_mutex_unlock(&c->ev_mutex);
}

static inline double seconds(Core *c, int64_t t) { return (double)(t - c->t0) * 1e-9; }

static void ring(Worker *w) {
    __atomic_add_fetch(&w->bell, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&w->sleeping, __ATOMIC_SEQ_CST)) futex_wake(&w->bell);
}

static inline int worker_idle(Worker *w) { return !w->busy && w->queue.count == 0 && w->ordered.count == 0; }

static inline double *model_of(Core *c, int64_t size, int part, int kind) {
    return &c->model[((size * c->nparts + part) * c->nkinds + kind) * MODEL_FIELDS];
}

/* dmda: the least expected end = max(expected free, now) + predicted; an uncalibrated worker that is idle first. */
static int choose(Core *c, int64_t k, int part, double now) {
    int W = c->nworkers;
    if (c->policy == POLICY_FIXED) return c->fixed_worker;
    if (c->policy == POLICY_ROUNDROBIN) return (int)(k % W);
    if (c->policy == POLICY_EAGER) {
        for (int w = 0; w < W; w++)
            if (worker_idle(&c->workers[w])) return w;
        return -1;
    }
    double best_end = INFINITY;
    int best = -1;
    for (int w = 0; w < W; w++) {
        Worker *wk = &c->workers[w];
        const double *m = model_of(c, c->sizes[k], part, wk->kind);
        if (m[0] < CALIBRATION_SAMPLES) {
            if (worker_idle(wk)) return w;
            if (m[0] == 0) continue;
        }
        double end = (wk->expected_free > now ? wk->expected_free : now) + m[1];
        if (end < best_end) best_end = end, best = w;
    }
    if (best >= 0) return best;
    for (int w = 0; w < W; w++)
        if (worker_idle(&c->workers[w])) return w;
    return 0;
}

static double prediction(Core *c, int64_t k, int part, int w) {
    const double *m = model_of(c, c->sizes[k], part, c->workers[w].kind);
    return m[0] > 0 ? m[1] : 0.0;
}

/* perfmodel.Stats.add: the first sample dropped; once calibrated, a sample beyond mean + 5 std is not learnt but
   counted (CALIBRATION_SAMPLES of them in a row: the model restarts from them); beyond WINDOW samples each new one
   weighs 1 / WINDOW. */
static void learn(double *m, double value) {
    if (!m[3]) {
        m[3] = 1;
        return;
    }
    double count = m[0], std = count > 1 ? sqrt(m[2] / (count - 1)) : 0.0;
    if (count >= CALIBRATION_SAMPLES && value > m[1] + OUTLIER_STDS * (std > 1e-6 ? std : 1e-6)) {
        m[4] += 1;
        double delta = value - m[5];
        m[5] += delta / m[4];
        m[6] += delta * (value - m[5]);
        if (m[4] >= CALIBRATION_SAMPLES) {
            m[0] = m[4], m[1] = m[5], m[2] = m[6];
            m[4] = m[5] = m[6] = 0;
        }
        return;
    }
    m[4] = m[5] = m[6] = 0;
    if (count >= WINDOW) {
        m[2] *= (WINDOW - 2.0) / (count - 1);
        count = WINDOW - 1;
    }
    m[0] = count + 1;
    double delta = value - m[1];
    m[1] += delta / m[0];
    m[2] += delta * (value - m[1]);
}

static void lose_task(Core *c, int64_t k, int part);

static void assign(Core *c, int w, int64_t k, int part, double now) {
    Worker *wk = &c->workers[w];
    double p = prediction(c, k, part, w);
    int queued;
    c->predicted[k * c->nparts + part] = p;
    wk->pending += p;
    wk->expected_free = (wk->expected_free > now ? wk->expected_free : now) + p;
    /* allocate_point made room for the tasks that can wait; a queue grows past it only with tasks of batches that
     * failed (a branch's error) still queued, and a growth that fails loses the task: lose_task */
    if (c->policy == POLICY_OPARA)
        queued = heap_push(&wk->ordered, k * c->nparts + c->rank[part], k * c->nparts + part);
    else if (c->ndeps[part]) queued = fifo_push_front(&wk->queue, k * c->nparts + part);  /* a started batch first */
    else queued = fifo_push(&wk->queue, k * c->nparts + part);
    if (queued < 0) {
        wk->pending -= p;
        lose_task(c, k, part);
        return;
    }
    if (!wk->busy) ring(wk);  /* a busy worker takes it itself when it completes its task */
}

static void dispatch(Core *c, int64_t k, int part, double now) {
    int w = choose(c, k, part, now);
    if (w >= 0) assign(c, w, k, part, now);
    else if ((c->ndeps[part] ? fifo_push_front(&c->central, k * c->nparts + part)
                             : fifo_push(&c->central, k * c->nparts + part)) < 0)
        lose_task(c, k, part);
}

/* Close batch k (finished or abandoned): its tensors go to `dropped` (freed by the caller once the lock is released;
 * freed here where there is none: a stop), or are freed by its last running task. Lock held. */
static void close_batch(Core *c, int64_t k, OrtValue **dropped, int *ndropped) {
    if (c->batch[k].state >= 2) return;
    c->batch[k].state = c->batch[k].running ? 3 : 2;
    c->closed++;
    if (c->batch[k].state == 2 && !c->keep) {
        for (int s = c->ninputs; s < c->nslots; s++) {
            OrtValue **v = &c->values[k * c->nslots + s];
            if (!*v) continue;
            if (dropped) dropped[(*ndropped)++] = *v;
            else release(S_ReleaseValue, *v);
            *v = NULL;
        }
    }
}

/* Every released batch closed and nothing more to release (or a stop): the point is over; its memory may be
 * freed once no task of it still runs (a task of a batch closed early, by a failed branch or a stop). */
static int over(Core *c) { return c->closed >= c->released && !(c->releasing && !c->stop); }

static int finished_point(Core *c) { return over(c) && c->inflight == 0; }

/* The point was stopped, or the core is being freed: the issuer releases nothing more. */
static int stopping(Core *c) {
    return __atomic_load_n(&c->stop, __ATOMIC_SEQ_CST) || __atomic_load_n(&c->closing, __ATOMIC_SEQ_CST);
}

/* Congested or told to stop: tasks not started are forgotten; running ones complete. Lock held. */
static void drop_queued(Core *c) {
    int64_t task;
    while ((task = fifo_pop(&c->central)) >= 0)
        if (!c->batch[task / c->nparts].running) close_batch(c, task / c->nparts, NULL, NULL);
    for (int w = 0; w < c->nworkers; w++) {
        Worker *wk = &c->workers[w];
        while ((task = fifo_pop(&wk->queue)) >= 0 || (task = heap_pop(&wk->ordered)) >= 0) {
            wk->pending -= c->predicted[task];
            if (!c->batch[task / c->nparts].running) close_batch(c, task / c->nparts, NULL, NULL);
        }
    }
}

static void stop_point(Core *c, int reason) {
    if (c->stop) return;
    __atomic_store_n(&c->stop, reason, __ATOMIC_SEQ_CST);
    c->stop_unfinished = (int)(c->released - c->closed);
    c->stop_at_ns = now_ns();
    c->releasing = 0;
    drop_queued(c);
}

/* A task that could not be queued (no memory to grow its queue): its batch fails with that error and the point
 * stops (the next pushes would fail as well). Lock held. */
static void note_error(Core *c, int64_t k, int part, char *text);

static void lose_task(Core *c, int64_t k, int part) {
    char *text = strdup("out of memory: a task could not be queued");
    if (text) note_error(c, k, part, text);
    if (c->batch[k].state < 2) {
        c->batch[k].failed = 1;
        c->end_ns[k] = now_ns();
        c->finished[c->nfinished++] = k;
        close_batch(c, k, NULL, NULL);
    }
    stop_point(c, STOP_MEMORY);
}

static void note_error(Core *c, int64_t k, int part, char *text) {
    if (c->nerrors == c->caperrors) {  /* without memory to grow the list, the text is lost (the batch still fails) */
        int64_t cap = c->caperrors ? 2 * c->caperrors : 16;
        int64_t *tasks = realloc(c->error_task, sizeof(int64_t) * cap);
        if (tasks) c->error_task = tasks;
        char **texts = tasks ? realloc(c->error_text, sizeof(char *) * cap) : NULL;
        if (texts) c->error_text = texts;
        if (!tasks || !texts) {
            free(text);
            return;
        }
        c->caperrors = cap;
    }
    c->error_task[c->nerrors] = k * c->nparts + part;
    c->error_text[c->nerrors++] = text;
}

/* Task (k, part) ended on worker w. Lock held. Values to free after unlocking are left in `dropped`. */
static void complete(Core *c, Worker *wk, int64_t k, int part, int64_t start, int64_t end, char *error,
                     OrtValue **outputs, OrtValue **dropped, int *ndropped) {
    int64_t task = k * c->nparts + part;
    double now = seconds(c, end);
    c->task_start[task] = start, c->task_end[task] = end, c->task_worker[task] = wk->index;
    wk->busy = 0;
    wk->pending -= c->predicted[task];
    if (wk->pending < 0) wk->pending = 0;
    wk->expected_free = now + wk->pending;
    c->batch[k].running--;
    c->inflight--;
    if (!error) learn(model_of(c, c->sizes[k], part, wk->kind), (double)(end - start) * 1e-9);
    int nout = c->nout[part];
    if (c->batch[k].state >= 2) {  /* its batch failed or was abandoned while this task ran */
        for (int i = 0; i < nout; i++) dropped[(*ndropped)++] = outputs[i];
        if (c->batch[k].state == 3 && !c->batch[k].running) {
            c->batch[k].state = 2;
            for (int s = c->ninputs; s < c->nslots; s++) {
                OrtValue **v = &c->values[k * c->nslots + s];
                if (*v) dropped[(*ndropped)++] = *v, *v = NULL;
            }
        }
        if (error) note_error(c, k, part, error);
        return;
    }
    if (error) {
        note_error(c, k, part, error);
        c->batch[k].failed = 1;
        for (int i = 0; i < nout; i++) dropped[(*ndropped)++] = outputs[i];
        c->end_ns[k] = end;
        c->finished[c->nfinished++] = k;
        close_batch(c, k, dropped, ndropped);
        return;
    }
    for (int i = 0; i < nout; i++) {
        int slot = c->out_slot[part][i];
        if (c->consumed[slot] || c->keep) c->values[k * c->nslots + slot] = outputs[i];
        else dropped[(*ndropped)++] = outputs[i];
    }
    if (--c->batch[k].partsleft == 0) {
        c->end_ns[k] = end;
        c->finished[c->nfinished++] = k;
        close_batch(c, k, dropped, ndropped);
    } else if (c->stop) {
        close_batch(c, k, dropped, ndropped);
    } else {
        for (int i = 0; i < c->nsucc[part]; i++) {
            int s = c->succ[part][i];
            if (--c->depleft[k * c->nparts + s] == 0) dispatch(c, k, s, now);
        }
    }
}

/* The worker's next task, its own or (eager) the central queue's; -1 if none. Lock held. */
static int64_t next_task(Core *c, Worker *wk) {
    if (!c->batch) return -1;  /* between points */
    for (;;) {
        int64_t task = c->policy == POLICY_OPARA ? heap_pop(&wk->ordered) : fifo_pop(&wk->queue);
        int central = task < 0 && c->central.count;
        if (central) task = fifo_pop(&c->central);
        if (task < 0) return -1;
        int64_t k = task / c->nparts;
        if (c->batch[k].state >= 2) {  /* its batch failed (another branch) or was abandoned: never run */
            if (!central) wk->pending = wk->pending > c->predicted[task] ? wk->pending - c->predicted[task] : 0.0;
            continue;
        }
        if (central) {
            double p = prediction(c, k, (int)(task % c->nparts), wk->index);
            c->predicted[task] = p;
            wk->pending += p;
        }
        wk->busy = 1;
        c->batch[k].running++;
        c->inflight++;
        return task;
    }
}

static inline OrtValue **in_value(Core *c, int w, int64_t size, int input) {
    return &c->in_values[((int64_t)w * (c->max_size + 1) + size) * c->ninputs + input];
}

/* A tensor over the first `size` rows of model input i, made by the worker that reads it, the first time (on its
 * own thread, so that its memory, whose reference count ONNX Runtime updates on every run, is not next to another
 * worker's). */
static OrtStatus *make_input(Core *c, Worker *wk, int64_t size, int i) {
    OrtValue **v = in_value(c, wk->index, size, i);
    if (*v) return NULL;
    int64_t shape[16];
    int rank = c->in_rank[i] < 16 ? c->in_rank[i] : 16;
    for (int d = 0; d < rank; d++) shape[d] = c->in_shape[i][d];
    if (!c->in_whole[i]) shape[0] = size;
    size_t bytes = c->in_whole[i] ? c->in_row_bytes[i] : c->in_row_bytes[i] * (size_t)size;
    return CALL(S_CreateTensorWithDataAsOrtValue, CreateTensorFn)(cpu_info, c->in_data[i], bytes, shape, rank,
                                                                  c->in_type[i], v);
}

static const OrtValue *input_value(Core *c, Worker *wk, int64_t k, int slot) {
    if (slot < c->ninputs) return *in_value(c, wk->index, c->sizes[k], slot);
    return c->values[k * c->nslots + slot];
}

/* Run the task, complete it, and take the next one in the same hold of the lock (StarPU's workers pop their next
 * task themselves): the next task, or -1. */
static int64_t run_task(Core *c, Worker *wk, int64_t task) {
    int64_t k = task / c->nparts;
    int part = (int)(task % c->nparts);
    const OrtValue *inputs[MAX_IO];
    OrtValue *outputs[MAX_IO] = {0};
    OrtValue **dropped = wk->dropped;
    int ndropped = 0;
    OrtStatus *status = NULL;
    for (int i = 0; i < c->nin[part] && !status; i++)
        if (c->in_slot[part][i] < c->ninputs) status = make_input(c, wk, c->sizes[k], c->in_slot[part][i]);
    for (int i = 0; i < c->nin[part]; i++) inputs[i] = input_value(c, wk, k, c->in_slot[part][i]);
    int64_t start = now_ns();
    if (!status) status = CALL(S_Run, RunFn)(wk->sessions[part], NULL, (const char *const *)c->in_names[part], inputs,
                                          c->nin[part], (const char *const *)c->out_names[part], c->nout[part],
                                          outputs);
    int64_t end = now_ns();
    char *error = status_text(status);
    lock(&c->lock);
    int64_t finished = c->nfinished;
    complete(c, wk, k, part, start, end, error, outputs, dropped, &ndropped);
    int64_t next = c->closing ? -1 : next_task(c, wk);
    int done = finished_point(c), news = c->nfinished > finished;
    unlock(&c->lock);
    for (int i = 0; i < ndropped; i++) release(S_ReleaseValue, dropped[i]);
    if (done || (news && __atomic_exchange_n(&c->py_wants_news, 0, __ATOMIC_SEQ_CST))) signal_python(c);
    return next;
}

static void pin(const int *cores, int n) {
    if (n <= 0) return;
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int i = 0; i < n; i++) CPU_SET(cores[i], &set);
    sched_setaffinity(0, sizeof(set), &set);
}

static void *serve(void *arg) {
    Worker *wk = arg;
    Core *c = wk->core;
    pin(wk->cores, 1);  /* on its first core: ORT's intra-op threads are pinned to the others (realtime.pin_driver) */
    for (;;) {
        lock(&c->lock);
        int64_t task = next_task(c, wk);
        int closing = c->closing;
        int32_t seen = __atomic_load_n(&wk->bell, __ATOMIC_SEQ_CST);
        unlock(&c->lock);
        if (task >= 0) {
            while (task >= 0) task = run_task(c, wk, task);
            continue;
        }
        if (closing) return NULL;
        /* poll the bell (a core to spare: StarPU's workers poll too), then sleep on it */
        int64_t until = now_ns() + c->spin_ns, next_yield = now_ns() + 20000;
        unsigned n = 0;
        while (__atomic_load_n(&wk->bell, __ATOMIC_ACQUIRE) == seen) {
            if ((++n & 63) == 0) {
                int64_t t = now_ns();
                if (t >= until) break;
                if (t >= next_yield) sched_yield(), next_yield = t + 20000;
            }
        }
        if (__atomic_load_n(&wk->bell, __ATOMIC_ACQUIRE) != seen) continue;
        __atomic_store_n(&wk->sleeping, 1, __ATOMIC_SEQ_CST);
        if (__atomic_load_n(&wk->bell, __ATOMIC_SEQ_CST) == seen) futex_wait(&wk->bell, seen, 100000000LL);
        __atomic_store_n(&wk->sleeping, 0, __ATOMIC_SEQ_CST);
    }
}

/* ---- the issuer: one thread releases every batch on time ---------------------------------------------------- */
static void issuer_priority(Core *c) {
    prctl(PR_SET_TIMERSLACK, 1, 0, 0, 0);
    struct sched_param sp = {.sched_priority = 1};
    if (pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp) == 0) {
        snprintf(c->issuer_level, sizeof c->issuer_level, "SCHED_FIFO 1");
    } else if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), -10) == 0) {
        snprintf(c->issuer_level, sizeof c->issuer_level, "nice -10");
    } else {
        snprintf(c->issuer_level, sizeof c->issuer_level, "as the workers");
    }
}

/* Asleep until `until`: on the issuer's bell (rung by a stop) to 1 ms before it, then on the clock. (Naps of 1 ms
 * woke this real-time thread a hundred times between two googlenet batches at 10 q/s, each time preempting one of
 * ONNX Runtime's threads mid-operator: runs of 15 ms took up to 28.) */
static void nap_until(Core *c, int64_t until) {
    const int64_t margin = 1000000;
    for (;;) {
        int32_t seen = __atomic_load_n(&c->issuer_bell, __ATOMIC_SEQ_CST);
        int64_t t = now_ns(), left = until - t;
        if (left <= 0 || stopping(c)) return;
        if (left > 2 * margin) futex_wait(&c->issuer_bell, seen, left - margin);
        else sleep_until(until);
        c->slept_ns = now_ns();
    }
}

static void wake_issuer(Core *c) {
    __atomic_add_fetch(&c->issuer_bell, 1, __ATOMIC_SEQ_CST);
    futex_wake(&c->issuer_bell);
}

/* Until `due`: asleep; 100 us before it, workers asleep on their bells are woken (a thread blocked in the kernel
 * wakes 20-40 us late and cold: the first batches of every point backed up behind it at 62,000 q/s); the last 50 us
 * polling, on a core the workers left (where they left none, asleep to the end: a real-time thread polling on a
 * worker's core would keep that worker off it). */
static void wait_due(Core *c, int64_t due) {
    const int64_t spin = c->nissuer_cores ? 50000 : 0, prewake = 100000;
    if (due - now_ns() > prewake) {
        nap_until(c, due - prewake);
        for (int w = 0; w < c->nworkers; w++)
            if (__atomic_load_n(&c->workers[w].sleeping, __ATOMIC_SEQ_CST)) ring(&c->workers[w]);
    }
    nap_until(c, due - spin);
    if (now_ns() - c->slept_ns > 10000000) {  /* releases closer than the poll: let the core's others run now and */
        struct timespec ts = {0, 1000};       /* then (a real-time thread polling keeps ordinary ones off) */
        nanosleep(&ts, NULL);
        c->slept_ns = now_ns();
    }
    while (now_ns() < due && !stopping(c)) {
    }
}

static void release_batch(Core *c, int64_t k, int64_t t) {
    double now = seconds(c, t);
    c->actual_ns[k] = t;
    c->released++;
    c->batch[k].state = 1;
    c->batch[k].partsleft = c->nparts;
    for (int p = 0; p < c->nparts; p++) c->depleft[k * c->nparts + p] = c->ndeps[p];
    for (int p = 0; p < c->nparts; p++)
        if (c->ndeps[p] == 0) dispatch(c, k, p, now);
    int64_t unfinished = c->released - c->closed;
    if (unfinished > c->max_backlog) stop_point(c, STOP_BACKLOG);
    else if (t - c->t0 > c->time_cap_ns) stop_point(c, STOP_TIME_CAP);
}

/* At the release limit: ask Python whether the point goes on (Limits.extend); the new limit, or -1. */
static int64_t ask(Core *c, int64_t k) {
    pthread_mutex_lock(&c->ev_mutex);
    if (stopping(c)) {  /* a stop (or the core's end) before the question: no answer will come */
        pthread_mutex_unlock(&c->ev_mutex);
        return -1;
    }
    c->asking = 1;
    c->answer_ready = 0;
    pthread_cond_broadcast(&c->ev_cond);
    while (!c->answer_ready && !stopping(c)) pthread_cond_wait(&c->go_cond, &c->ev_mutex);
    c->asking = 0;
    int64_t limit = c->answer_ready ? c->answered_limit : -1;
    pthread_mutex_unlock(&c->ev_mutex);
    return limit > k ? limit : -1;
}

static void release_all(Core *c) {
    for (int64_t k = 0; k < c->batches; k++) {
        if (stopping(c)) break;
        if (k >= c->release_limit) {
            int64_t limit = ask(c, k);
            if (limit < 0) break;
            c->release_limit = limit;
        }
        wait_due(c, c->t0 + c->release_ns[k]);
        lock(&c->lock);
        if (c->stop) {
            unlock(&c->lock);
            break;
        }
        int64_t now = now_ns();
        release_batch(c, k, now);
        /* batches already due (released at once, or the issuer was late): in the same hold of the lock */
        for (int n = 0; n < 32 && !c->stop && k + 1 < c->batches && k + 1 < c->release_limit &&
                        c->t0 + c->release_ns[k + 1] <= now; n++)
            release_batch(c, ++k, now);
        unlock(&c->lock);
    }
    lock(&c->lock);
    c->releasing = 0;
    unlock(&c->lock);
    pthread_mutex_lock(&c->ev_mutex);
    c->issuing = 0;
    pthread_cond_broadcast(&c->ev_cond);
    pthread_mutex_unlock(&c->ev_mutex);
}

static void *issue(void *arg) {
    Core *c = arg;
    pin(c->issuer_cores, c->nissuer_cores);
    issuer_priority(c);
    int64_t seen = 0;
    for (;;) {
        pthread_mutex_lock(&c->ev_mutex);
        while (c->go_seq == seen && !c->closing) pthread_cond_wait(&c->go_cond, &c->ev_mutex);
        int closing = c->closing;
        seen = c->go_seq;
        pthread_mutex_unlock(&c->ev_mutex);
        if (closing) return NULL;
        release_all(c);
    }
}

/* ---- the Python type ---------------------------------------------------------------------------------------- */
typedef struct {
    PyObject_HEAD
    Core *core;
    Py_buffer views[16];  /* the model inputs' buffers, read by the workers */
    int nviews;
    Py_buffer point_views[8];  /* the running point's arrays */
    int npoint_views;
} CoreObject;

static void free_point(Core *c);

static void free_core(Core *c) {
    if (!c) return;
    lock(&c->lock);
    if (c->values) stop_point(c, STOP_ASKED);  /* a point still running: nothing more released or started */
    __atomic_store_n(&c->closing, 1, __ATOMIC_SEQ_CST);
    unlock(&c->lock);
    pthread_mutex_lock(&c->ev_mutex);
    pthread_cond_broadcast(&c->go_cond);
    pthread_cond_broadcast(&c->ev_cond);
    pthread_mutex_unlock(&c->ev_mutex);
    wake_issuer(c);
    for (int w = 0; w < c->nworkers && c->workers; w++) {
        Worker *wk = &c->workers[w];
        ring(wk);
        if (wk->started) pthread_join(wk->thread, NULL);
    }
    if (c->issuer_started) pthread_join(c->issuer, NULL);
    if (c->workers) free_point(c);
    for (int w = 0; w < c->nworkers && c->workers; w++) {
        Worker *wk = &c->workers[w];
        for (int p = 0; p < c->nparts && wk->sessions; p++) release(S_ReleaseSession, wk->sessions[p]);
        free(wk->sessions);
        free(wk->dropped);
        free(wk->queue.items);
        free(wk->ordered.items);
    }
    free(c->workers);
    free(c->central.items);
    if (c->in_values)
        for (int64_t i = 0; i < c->nworkers * (c->max_size + 1) * c->ninputs; i++)
            release(S_ReleaseValue, c->in_values[i]);
    free(c->in_values);
    for (int p = 0; p < c->nparts; p++) {
        for (int i = 0; c->in_names && c->in_names[p] && i < c->nin[p]; i++) free(c->in_names[p][i]);
        for (int i = 0; c->out_names && c->out_names[p] && i < c->nout[p]; i++) free(c->out_names[p][i]);
        if (c->in_names) free(c->in_names[p]);
        if (c->out_names) free(c->out_names[p]);
        if (c->in_slot) free(c->in_slot[p]);
        if (c->out_slot) free(c->out_slot[p]);
        if (c->succ) free(c->succ[p]);
    }
    free(c->in_names), free(c->out_names), free(c->in_slot), free(c->out_slot), free(c->succ), free(c->nsucc);
    free(c->nin), free(c->nout), free(c->ndeps), free(c->consumed), free(c->rank);
    for (int i = 0; i < c->ninputs; i++) free(c->in_shape ? c->in_shape[i] : NULL);
    free(c->in_shape), free(c->in_data), free(c->in_type), free(c->in_rank), free(c->in_whole), free(c->in_row_bytes);
    for (int64_t i = 0; i < c->nerrors; i++) free(c->error_text[i]);
    free(c->error_task), free(c->error_text), free(c->model);
    pthread_mutex_destroy(&c->ev_mutex);
    pthread_cond_destroy(&c->ev_cond);
    pthread_cond_destroy(&c->go_cond);
    free(c);
}

/* ---- building a core: sessions, the part graph, the model inputs ------------------------------------------- */
static int int_list(PyObject *seq, int **out, int *n) {
    PyObject *fast = PySequence_Fast(seq, "expected a sequence of ints");
    if (!fast) return -1;
    *n = (int)PySequence_Fast_GET_SIZE(fast);
    *out = calloc(*n + 1, sizeof(int));
    if (!*out) {
        Py_DECREF(fast);
        PyErr_NoMemory();
        return -1;
    }
    for (int i = 0; i < *n && !PyErr_Occurred(); i++) (*out)[i] = (int)PyLong_AsLong(PySequence_Fast_GET_ITEM(fast, i));
    Py_DECREF(fast);
    if (!PyErr_Occurred()) return 0;
    free(*out);
    *out = NULL;
    return -1;
}

/* [(name, slot), ...] -> names and slots */
static int io_list(PyObject *seq, char ***names, int **slots, int *n) {
    PyObject *fast = PySequence_Fast(seq, "expected [(name, slot), ...]");
    if (!fast) return -1;
    *n = (int)PySequence_Fast_GET_SIZE(fast);
    if (*n > MAX_IO) {
        *n = 0;
        Py_DECREF(fast);
        PyErr_Format(PyExc_ValueError, "a part has more than %d inputs or outputs", MAX_IO);
        return -1;
    }
    *names = calloc(*n + 1, sizeof(char *));
    *slots = calloc(*n + 1, sizeof(int));
    if (!*names || !*slots) {
        Py_DECREF(fast);
        PyErr_NoMemory();
        return -1;
    }
    for (int i = 0; i < *n; i++) {
        const char *name;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(fast, i), "si", &name, &(*slots)[i])) {
            Py_DECREF(fast);
            return -1;
        }
        if (!((*names)[i] = strdup(name))) {
            Py_DECREF(fast);
            PyErr_NoMemory();
            return -1;
        }
    }
    Py_DECREF(fast);
    return 0;
}

/* A worker's session of one part: the options of realtime.pinned_session_options. */
static OrtSession *make_session(const char *path, Worker *wk, PyObject *free_dims, int opt_level, char **error) {
    OrtSessionOptions *so = NULL;
    OrtSession *session = NULL;
    if (free_dims && !PyList_Check(free_dims)) {  /* read as a list below */
        PyErr_SetString(PyExc_TypeError, "a part's free dimensions must be a list of (name, value)");
        return NULL;
    }
    OrtStatus *st = CALL(S_CreateSessionOptions, CreateOptionsFn)(&so);
    /* fatal only: a failed run returns its status, which the batch records (errors column); ORT also logging it
       printed a raw [E:onnxruntime:...] line beside staronnx's own */
    if (!st) st = CALL(S_SetSessionLogSeverityLevel, SetIntFn)(so, 4);
    if (!st) st = CALL(S_SetSessionGraphOptimizationLevel, SetIntFn)(so, opt_level);
    if (!st) st = CALL(S_SetIntraOpNumThreads, SetIntFn)(so, wk->ncores > 0 ? wk->ncores : 1);
    if (!st) st = CALL(S_SetInterOpNumThreads, SetIntFn)(so, 1);
    if (!st && wk->ncores > 1) {
        char affinities[4096] = "";
        for (int i = 1; i < wk->ncores; i++) {
            size_t used = strlen(affinities);
            snprintf(affinities + used, sizeof affinities - used, "%s%d", i > 1 ? ";" : "", wk->cores[i] + 1);
        }
        st = CALL(S_AddSessionConfigEntry, ConfigEntryFn)(so, "session.intra_op_thread_affinities", affinities);
    }
    Py_ssize_t ndims = free_dims ? PyList_GET_SIZE(free_dims) : 0;
    for (Py_ssize_t i = 0; !st && i < ndims; i++) {
        const char *name;
        long long value;
        if (!PyArg_ParseTuple(PyList_GET_ITEM(free_dims, i), "sL", &name, &value)) break;
        st = CALL(S_AddFreeDimensionOverrideByName, FreeDimFn)(so, name, value);
    }
    if (!st && !PyErr_Occurred()) {
        Py_BEGIN_ALLOW_THREADS
        st = CALL(S_CreateSession, CreateSessionFn)(env, path, so, &session);
        Py_END_ALLOW_THREADS
    }
    *error = status_text(st);
    release(S_ReleaseSessionOptions, so);
    return session;
}

static int build_parts(Core *c, PyObject *deps, PyObject *inputs, PyObject *outputs) {
    int P = c->nparts;
    c->ndeps = calloc(P, sizeof(int)), c->nsucc = calloc(P, sizeof(int)), c->succ = calloc(P, sizeof(int *));
    c->rank = calloc(P, sizeof(int));
    c->nin = calloc(P, sizeof(int)), c->nout = calloc(P, sizeof(int));
    c->in_slot = calloc(P, sizeof(int *)), c->out_slot = calloc(P, sizeof(int *));
    c->in_names = calloc(P, sizeof(char **)), c->out_names = calloc(P, sizeof(char **));
    c->consumed = calloc(c->nslots + 1, 1);
    if (!c->ndeps || !c->nsucc || !c->succ || !c->rank || !c->nin || !c->nout || !c->in_slot || !c->out_slot ||
        !c->in_names || !c->out_names || !c->consumed) {
        PyErr_NoMemory();
        return -1;
    }
    for (int p = 0; p < P; p++) c->rank[p] = p;
    for (int p = 0; p < P; p++)
        if (!(c->succ[p] = calloc(P, sizeof(int)))) {
            PyErr_NoMemory();
            return -1;
        }
    for (int p = 0; p < P; p++) {
        int *d, nd;
        if (int_list(PyList_GET_ITEM(deps, p), &d, &nd) < 0) return -1;
        c->ndeps[p] = nd;
        for (int i = 0; i < nd; i++) {  /* each at most once, earlier in the list of parts: room P, no cycle */
            int repeated = 0;
            for (int j = 0; j < i; j++) repeated |= d[j] == d[i];
            if (d[i] < 0 || d[i] >= p || repeated) {
                free(d);
                PyErr_SetString(PyExc_ValueError, "a part depends on a later part, on itself, twice, or on a part "
                                                  "that does not exist (parts in a topological order)");
                return -1;
            }
            c->succ[d[i]][c->nsucc[d[i]]++] = p;
        }
        free(d);
        if (io_list(PyList_GET_ITEM(inputs, p), &c->in_names[p], &c->in_slot[p], &c->nin[p]) < 0 ||
            io_list(PyList_GET_ITEM(outputs, p), &c->out_names[p], &c->out_slot[p], &c->nout[p]) < 0)
            return -1;
        for (int i = 0; i < c->nin[p]; i++) {
            int s = c->in_slot[p][i];
            if (s < 0 || s >= c->nslots) {
                PyErr_SetString(PyExc_ValueError, "a tensor slot is out of range");
                return -1;
            }
            c->consumed[s] = 1;
        }
        for (int i = 0; i < c->nout[p]; i++)
            if (c->out_slot[p][i] < c->ninputs || c->out_slot[p][i] >= c->nslots) {
                PyErr_SetString(PyExc_ValueError, "an output's tensor slot is out of range");
                return -1;
            }
    }
    return 0;
}

/* Model inputs: (array, onnx element type[, whole]) per input slot; each array holds max_size rows, C-contiguous, or
 * (whole = 1) is given whole to every batch. */
static int build_inputs(CoreObject *self, Core *c, PyObject *arrays) {
    c->in_data = calloc(c->ninputs + 1, sizeof(void *));
    c->in_type = calloc(c->ninputs + 1, sizeof(int)), c->in_rank = calloc(c->ninputs + 1, sizeof(int));
    c->in_whole = calloc(c->ninputs + 1, sizeof(int));
    c->in_shape = calloc(c->ninputs + 1, sizeof(int64_t *)), c->in_row_bytes = calloc(c->ninputs + 1, sizeof(size_t));
    for (int i = 0; i < c->ninputs; i++) {
        PyObject *array;
        int type, whole = 0;
        if (!PyArg_ParseTuple(PyList_GET_ITEM(arrays, i), "Oi|p", &array, &type, &whole)) return -1;
        if (self->nviews >= 16) {
            PyErr_SetString(PyExc_ValueError, "at most 16 model inputs");
            return -1;
        }
        Py_buffer *view = &self->views[self->nviews];
        if (PyObject_GetBuffer(array, view, PyBUF_C_CONTIGUOUS | PyBUF_ND) < 0) return -1;
        self->nviews++;
        if (!whole && (view->ndim < 1 || view->shape[0] < c->max_size)) {
            PyErr_SetString(PyExc_ValueError, "a model input has fewer rows than the largest batch");
            return -1;
        }
        c->in_data[i] = view->buf, c->in_type[i] = type, c->in_rank[i] = view->ndim, c->in_whole[i] = whole;
        c->in_shape[i] = calloc(view->ndim + 1, sizeof(int64_t));
        for (int d = 0; d < view->ndim; d++) c->in_shape[i][d] = view->shape[d];
        c->in_row_bytes[i] = whole ? (size_t)view->len : (size_t)(view->len / view->shape[0]);
    }
    c->in_values = calloc(c->nworkers * (c->max_size + 1) * c->ninputs + 1, sizeof(OrtValue *));
    return 0;
}

static int start_threads(Core *c) {
    for (int w = 0; w < c->nworkers; w++) {
        if (pthread_create(&c->workers[w].thread, NULL, serve, &c->workers[w]) != 0) return -1;
        c->workers[w].started = 1;
    }
    if (pthread_create(&c->issuer, NULL, issue, c) != 0) return -1;
    c->issuer_started = 1;
    return 0;
}

/* Core(worker_cores, worker_kinds, part_paths, deps, part_inputs, part_outputs, nslots, inputs, max_size, free_dims,
 *      opt_level, spin_ns, issuer_cores) */
static int core_init(CoreObject *self, PyObject *args, PyObject *kw) {
    PyObject *worker_cores, *worker_kinds, *paths, *deps, *inputs, *outputs, *arrays, *free_dims, *issuer_cores;
    int nslots, opt_level;
    long long max_size, spin_ns;
    if (!PyArg_ParseTuple(args, "O!O!O!O!O!O!iO!LO!iLO!", &PyList_Type, &worker_cores, &PyList_Type, &worker_kinds,
                          &PyList_Type, &paths, &PyList_Type, &deps, &PyList_Type, &inputs, &PyList_Type, &outputs,
                          &nslots, &PyList_Type, &arrays, &max_size, &PyList_Type, &free_dims, &opt_level, &spin_ns,
                          &PyList_Type, &issuer_cores))
        return -1;
    if (!api) {
        PyErr_SetString(PyExc_RuntimeError, "load() ONNX Runtime's library first");
        return -1;
    }
    if (self->core) {
        PyErr_SetString(PyExc_RuntimeError, "the core is built already");
        return -1;
    }
    int P = (int)PyList_GET_SIZE(paths);
    if (P < 1 || PyList_GET_SIZE(deps) != P || PyList_GET_SIZE(inputs) != P || PyList_GET_SIZE(outputs) != P ||
        PyList_GET_SIZE(free_dims) != P || PyList_GET_SIZE(worker_cores) < 1 || max_size < 1 ||
        PyList_GET_SIZE(worker_kinds) != PyList_GET_SIZE(worker_cores)) {
        PyErr_SetString(PyExc_ValueError, "parts, their graph, inputs and outputs must agree, with a worker");
        return -1;
    }
    if (max_size > MAX_BATCH || nslots < 1 || nslots > MAX_SLOTS || PyList_GET_SIZE(worker_cores) > MAX_WORKERS) {
        PyErr_Format(PyExc_ValueError, "at most %d queries a batch, %d tensors and %d workers", MAX_BATCH, MAX_SLOTS,
                     MAX_WORKERS);
        return -1;
    }
    Core *c = calloc(1, sizeof(Core));
    if (!c) return PyErr_NoMemory(), -1;
    self->core = c;
    pthread_condattr_t attr;  /* first: free_core uses them whatever fails below */
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&c->ev_cond, &attr);
    pthread_cond_init(&c->go_cond, &attr);
    pthread_condattr_destroy(&attr);
    pthread_mutex_init(&c->ev_mutex, NULL);
    c->nworkers = (int)PyList_GET_SIZE(worker_cores);
    c->workers = calloc(c->nworkers, sizeof(Worker));
    if (!c->workers) return PyErr_NoMemory(), -1;
    c->nparts = P, c->nslots = nslots, c->ninputs = (int)PyList_GET_SIZE(arrays), c->max_size = max_size;
    c->spin_ns = spin_ns;
    int nkinds = 0;
    for (Py_ssize_t w = 0; w < PyList_GET_SIZE(worker_kinds); w++) {
        long kind = PyLong_AsLong(PyList_GET_ITEM(worker_kinds, w));
        if (kind == -1 && PyErr_Occurred()) return -1;
        if (kind < 0 || kind >= MAX_WORKERS) {
            PyErr_SetString(PyExc_ValueError, "a worker's kind is out of range");
            return -1;
        }
        if (kind + 1 > nkinds) nkinds = (int)kind + 1;
    }
    int *icores = NULL, nicores = 0;
    if (int_list(issuer_cores, &icores, &nicores) < 0) return free(icores), -1;
    c->nissuer_cores = nicores < 256 ? nicores : 256;
    memcpy(c->issuer_cores, icores, sizeof(int) * c->nissuer_cores);
    free(icores);
    if (build_parts(c, deps, inputs, outputs) < 0 || build_inputs(self, c, arrays) < 0) return -1;
    c->nkinds = nkinds > 0 ? nkinds : 1;
    c->model = calloc((max_size + 1) * P * c->nkinds * MODEL_FIELDS, sizeof(double));
    if (!c->model) return PyErr_NoMemory(), -1;
    for (int w = 0; w < c->nworkers; w++) {
        Worker *wk = &c->workers[w];
        int *cores, n;
        wk->core = c, wk->index = w;
        wk->kind = (int)PyLong_AsLong(PyList_GET_ITEM(worker_kinds, w));
        if (wk->kind < 0 || wk->kind >= c->nkinds) {
            PyErr_SetString(PyExc_ValueError, "a worker's kind is out of range");
            return -1;
        }
        if (int_list(PyList_GET_ITEM(worker_cores, w), &cores, &n) < 0) return -1;
        wk->ncores = n < 256 ? n : 256;
        memcpy(wk->cores, cores, sizeof(int) * wk->ncores);
        free(cores);
        wk->sessions = calloc(P, sizeof(OrtSession *));
        wk->dropped = calloc(MAX_IO + nslots + 1, sizeof(OrtValue *));
        if (!wk->sessions || !wk->dropped) return PyErr_NoMemory(), -1;
        for (int p = 0; p < P; p++) {
            char *error = NULL;
            PyObject *item = PyList_GET_ITEM(paths, p);
            Py_INCREF(item);  /* its text is read with the GIL released */
            const char *path = PyUnicode_AsUTF8(item);
            if (!path) return Py_DECREF(item), -1;
            wk->sessions[p] = make_session(path, wk, PyList_GET_ITEM(free_dims, p), opt_level, &error);
            Py_DECREF(item);
            if (PyErr_Occurred()) return free(error), -1;
            if (error) {
                PyErr_Format(PyExc_RuntimeError, "ONNX Runtime cannot load part %d: %s", p, error);
                free(error);
                return -1;
            }
        }
    }
    if (start_threads(c) < 0) {
        PyErr_SetString(PyExc_RuntimeError, "cannot start the core's threads");
        return -1;
    }
    return 0;
}

static void release_views(CoreObject *self, int from) {
    for (int i = from; i < self->nviews; i++) PyBuffer_Release(&self->views[i]);
    self->nviews = from;
}

static void release_point_views(CoreObject *self) {
    for (int i = 0; i < self->npoint_views; i++) PyBuffer_Release(&self->point_views[i]);
    self->npoint_views = 0;
}

/* The object's core, or NULL with a RuntimeError (an object whose __init__ failed or never ran). */
static Core *core_of(CoreObject *self) {
    if (!self->core) PyErr_SetString(PyExc_RuntimeError, "the core was not built (its __init__ failed)");
    return self->core;
}

static void core_dealloc(CoreObject *self) {
    Core *c = self->core;
    self->core = NULL;
    if (c) {
        Py_BEGIN_ALLOW_THREADS
        free_core(c);
        Py_END_ALLOW_THREADS
    }
    release_point_views(self);
    release_views(self, 0);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* ---- one point ---------------------------------------------------------------------------------------------- */
static int point_buffer(CoreObject *self, PyObject *obj, void **out, Py_ssize_t items, Py_ssize_t itemsize) {
    if (self->npoint_views >= 8) return -1;
    Py_buffer *view = &self->point_views[self->npoint_views];
    if (PyObject_GetBuffer(obj, view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0) return -1;
    self->npoint_views++;
    if (view->len < items * itemsize) {
        PyErr_SetString(PyExc_ValueError, "a record array is too short for the point");
        return -1;
    }
    *out = view->buf;
    return 0;
}

static void free_point(Core *c) {
    if (c->values)
        for (int64_t i = 0; i < c->batches * c->nslots; i++) release(S_ReleaseValue, c->values[i]);
    free(c->values), free(c->depleft), free(c->batch), free(c->predicted);
    c->values = NULL, c->depleft = NULL, c->batch = NULL;
    c->predicted = NULL;
    free(c->central.items);
    memset(&c->central, 0, sizeof c->central);
    for (int w = 0; w < c->nworkers; w++)  /* tasks of batches closed early */
        c->workers[w].queue.count = c->workers[w].ordered.count = 0;
}

/* Everything a point of B batches (T tasks) needs, before its clock starts: its tensors' and batches' state and room
 * in every queue for the tasks that can wait at once (those of max_backlog + 1 unfinished batches: a release past
 * the bound stops the point), so that no task's push allocates or fails. -1: out of memory. */
static int allocate_point(Core *c, int64_t B, int64_t T) {
    c->values = calloc(B * c->nslots + 1, sizeof(OrtValue *));
    c->depleft = calloc(T + 1, sizeof(int64_t));
    c->batch = aligned_alloc(64, sizeof(Batch) * (B + 1));
    c->predicted = calloc(T + 1, sizeof(double));
    if (!c->values || !c->depleft || !c->batch || !c->predicted) return -1;
    memset(c->batch, 0, sizeof(Batch) * (B + 1));
    int64_t waiting = c->max_backlog < T / c->nparts ? (c->max_backlog + 2) * c->nparts : T;
    int64_t room = (waiting < T ? waiting : T) + 1;
    if (c->policy == POLICY_EAGER && fifo_reserve(&c->central, room) < 0) return -1;
    for (int w = 0; w < c->nworkers; w++) {
        Worker *wk = &c->workers[w];
        if (c->policy == POLICY_OPARA ? heap_reserve(&wk->ordered, room) : fifo_reserve(&wk->queue, room)) return -1;
    }
    return 0;
}

/* start(release_ns, sizes, actual_ns, end_ns, finished, task_start, task_end, task_worker, t0_ns, limit,
 *       max_backlog, time_cap_ns, policy, fixed_worker): the issuer starts releasing; returns at once. */
static PyObject *core_start(CoreObject *self, PyObject *args) {
    Core *c = core_of(self);
    PyObject *a[8];
    long long t0, limit, backlog, cap;
    int policy, fixed;
    if (!PyArg_ParseTuple(args, "OOOOOOOOLLLLii", &a[0], &a[1], &a[2], &a[3], &a[4], &a[5], &a[6], &a[7], &t0,
                          &limit, &backlog, &cap, &policy, &fixed))
        return NULL;
    if (!c) return NULL;
    lock(&c->lock);
    int busy = c->issuing || c->npoint || c->inflight;
    unlock(&c->lock);
    if (busy || self->npoint_views) {
        PyErr_SetString(PyExc_RuntimeError, "a point is already running on this core (end() it first)");
        return NULL;
    }
    if (policy < POLICY_DMDA || policy > POLICY_OPARA || (policy == POLICY_FIXED && (fixed < 0 || fixed >= c->nworkers))) {
        PyErr_SetString(PyExc_ValueError, "unknown policy or worker");
        return NULL;
    }
    Py_ssize_t B = PyObject_Length(a[0]), T = B * c->nparts;
    void *bufs[8];
    Py_ssize_t sizes[8] = {8, 8, 8, 8, 8, 8, 8, 4}, counts[8] = {B, B, B, B, B, T, T, T};
    for (int i = 0; i < 8; i++)
        if (B < 0 || point_buffer(self, a[i], &bufs[i], counts[i], sizes[i]) < 0) {
            release_point_views(self);
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "bad point arrays");
            return NULL;
        }
    c->release_ns = bufs[0], c->sizes = bufs[1], c->actual_ns = bufs[2], c->end_ns = bufs[3];
    c->finished = bufs[4], c->task_start = bufs[5], c->task_end = bufs[6], c->task_worker = bufs[7];
    for (Py_ssize_t k = 0; k < B; k++)
        if (c->sizes[k] < 1 || c->sizes[k] > c->max_size) {
            release_point_views(self);
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "a batch size is outside 1..max_size");
            return NULL;
        }
    /* under the lock: an idle worker wakes every 100 ms and reads the point's state and its queues */
    lock(&c->lock);
    free_point(c);  /* a point whose outputs were kept (keep_outputs) */
    c->batches = B, c->t0 = t0, c->release_limit = limit < B ? limit : B, c->max_backlog = backlog;
    c->time_cap_ns = cap, c->policy = policy, c->fixed_worker = fixed;
    int no_room = allocate_point(c, B, T) < 0;
    if (no_room) {
        free_point(c);
    } else {
        c->npoint = 1;
        for (int64_t i = 0; i < c->nerrors; i++) free(c->error_text[i]);
        c->nerrors = 0;
        c->released = c->closed = c->nfinished = c->inflight = 0, c->stop = STOP_NONE, c->stop_unfinished = 0;
        c->rr = 0, c->releasing = B > 0;
        for (int w = 0; w < c->nworkers; w++) c->workers[w].expected_free = c->workers[w].pending = 0.0;
    }
    unlock(&c->lock);
    if (no_room) {
        release_point_views(self);
        return PyErr_NoMemory();
    }
    pthread_mutex_lock(&c->ev_mutex);
    c->issuing = 1;
    c->go_seq++;
    pthread_cond_broadcast(&c->go_cond);
    pthread_mutex_unlock(&c->ev_mutex);
    Py_RETURN_NONE;
}

/* wait(timeout_ns, gap_ns) -> (finished, asking, over, errors): GIL released. Returns when the point ends, when
 * the issuer asks, at the timeout, or once a batch finished (woken by the worker that finished it), but not sooner
 * than gap_ns after the call: at low load Python wakes once per batch, at high load once per gap, never in between
 * (a thread waking every millisecond on a worker's core slowed googlenet's runs by 10 %). */
static PyObject *core_wait(CoreObject *self, PyObject *args) {
    Core *c = core_of(self);
    if (!c) return NULL;
    long long timeout, gap;
    if (!PyArg_ParseTuple(args, "LL", &timeout, &gap)) return NULL;
    int64_t finished, errors, seen;
    int asking, done;
    Py_BEGIN_ALLOW_THREADS
    int64_t t = now_ns(), until = t + timeout, earliest = t + gap;
    lock(&c->lock);
    seen = c->nfinished;
    unlock(&c->lock);
    pthread_mutex_lock(&c->ev_mutex);
    for (;;) {
        __atomic_store_n(&c->py_wants_news, 1, __ATOMIC_SEQ_CST);  /* before looking: no finish is missed */
        lock(&c->lock);
        done = finished_point(c) && !c->issuing;
        finished = c->nfinished, errors = c->nerrors;
        unlock(&c->lock);
        asking = c->asking && !c->answer_ready;
        t = now_ns();
        if (done || asking || t >= until || (finished > seen && t >= earliest)) break;
        int64_t deadline = until;
        if (finished > seen) {
            __atomic_store_n(&c->py_wants_news, 0, __ATOMIC_SEQ_CST);
            deadline = earliest;
        }
        struct timespec ts = {(time_t)(deadline / 1000000000LL), (long)(deadline % 1000000000LL)};
        pthread_cond_timedwait(&c->ev_cond, &c->ev_mutex, &ts);
    }
    __atomic_store_n(&c->py_wants_news, 0, __ATOMIC_SEQ_CST);
    pthread_mutex_unlock(&c->ev_mutex);
    Py_END_ALLOW_THREADS
    return Py_BuildValue("LiiL", (long long)finished, asking, done, (long long)errors);
}

static PyObject *core_answer(CoreObject *self, PyObject *args) {
    Core *c = core_of(self);
    if (!c) return NULL;
    long long limit;
    if (!PyArg_ParseTuple(args, "L", &limit)) return NULL;
    pthread_mutex_lock(&c->ev_mutex);
    c->answered_limit = limit;
    c->answer_ready = 1;
    pthread_cond_broadcast(&c->go_cond);
    pthread_mutex_unlock(&c->ev_mutex);
    Py_RETURN_NONE;
}

static PyObject *core_stop(CoreObject *self, PyObject *unused) {
    Core *c = core_of(self);
    if (!c) return NULL;
    lock(&c->lock);
    if (c->values) stop_point(c, STOP_ASKED);
    unlock(&c->lock);
    wake_issuer(c);
    pthread_mutex_lock(&c->ev_mutex);
    pthread_cond_broadcast(&c->go_cond);  /* an issuer asking sees the stop */
    pthread_mutex_unlock(&c->ev_mutex);
    Py_RETURN_NONE;
}

/* end() -> (released, stop code, unfinished at the stop, stop time ns): waits for the point's end, frees it. */
static PyObject *core_end(CoreObject *self, PyObject *unused) {
    Core *c = core_of(self);
    if (!c) return NULL;
    if (!self->npoint_views) return Py_BuildValue("LiiL", 0LL, 0, 0, 0LL);  /* no point: nothing to end */
    Py_BEGIN_ALLOW_THREADS
    pthread_mutex_lock(&c->ev_mutex);
    for (;;) {
        lock(&c->lock);
        int done = finished_point(c) && !c->issuing;
        if (done) {  /* in the same hold: no worker takes a task of this point after the look */
            if (!c->keep) free_point(c);
            c->npoint = 0;
        }
        unlock(&c->lock);
        if (done) break;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += 1000000;
        if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&c->ev_cond, &c->ev_mutex, &ts);
    }
    pthread_mutex_unlock(&c->ev_mutex);
    Py_END_ALLOW_THREADS
    release_point_views(self);
    return Py_BuildValue("LiiL", (long long)c->released, c->stop, c->stop_unfinished, (long long)c->stop_at_ns);
}

/* set_model(float64[(max_size+1) * parts * kinds * MODEL_FIELDS] as bytes): the performance models */
static PyObject *core_set_model(CoreObject *self, PyObject *args) {
    Core *c = core_of(self);
    if (!c) return NULL;
    Py_buffer table;
    if (!PyArg_ParseTuple(args, "y*", &table)) return NULL;
    Py_ssize_t n = (c->max_size + 1) * c->nparts * c->nkinds * MODEL_FIELDS * (Py_ssize_t)sizeof(double);
    if (table.len != n) {
        PyBuffer_Release(&table);
        PyErr_SetString(PyExc_ValueError, "the model table's size does not match the core");
        return NULL;
    }
    lock(&c->lock);
    memcpy(c->model, table.buf, table.len);
    unlock(&c->lock);
    PyBuffer_Release(&table);
    Py_RETURN_NONE;
}

/* model() -> the performance models as learnt so far (set_model's layout, as bytes) */
static PyObject *core_model(CoreObject *self, PyObject *unused) {
    Core *c = core_of(self);
    if (!c) return NULL;
    Py_ssize_t n = (c->max_size + 1) * c->nparts * c->nkinds * MODEL_FIELDS * (Py_ssize_t)sizeof(double);
    PyObject *out = PyBytes_FromStringAndSize(NULL, n);
    if (!out) return NULL;
    lock(&c->lock);
    memcpy(PyBytes_AS_STRING(out), c->model, n);
    unlock(&c->lock);
    return out;
}

/* errors() -> [(batch, part, message)] of the last point */
static PyObject *core_errors(CoreObject *self, PyObject *unused) {
    Core *c = core_of(self);
    if (!c) return NULL;
    lock(&c->lock);  /* copied under the lock, made into Python objects after it (workers spin meanwhile) */
    int64_t n = c->nerrors, *tasks = malloc(sizeof(int64_t) * (n + 1));
    char **texts = malloc(sizeof(char *) * (n + 1));
    for (int64_t i = 0; i < n && tasks && texts; i++) tasks[i] = c->error_task[i], texts[i] = strdup(c->error_text[i]);
    unlock(&c->lock);
    PyObject *out = tasks && texts ? PyList_New(0) : PyErr_NoMemory();
    for (int64_t i = 0; i < n && out; i++) {
        PyObject *item = Py_BuildValue("LLs", (long long)(tasks[i] / c->nparts), (long long)(tasks[i] % c->nparts),
                                       texts[i] ? texts[i] : "");
        if (!item || PyList_Append(out, item) < 0) Py_CLEAR(out);
        Py_XDECREF(item);
    }
    for (int64_t i = 0; i < n && tasks && texts; i++) free(texts[i]);
    free(tasks), free(texts);
    return out;
}

/* set_order([rank per part]): the opara policy's launch order (a permutation of the parts) */
static PyObject *core_set_order(CoreObject *self, PyObject *args) {
    Core *c = core_of(self);
    if (!c) return NULL;
    PyObject *ranks;
    int *values, n;
    if (!PyArg_ParseTuple(args, "O", &ranks) || int_list(ranks, &values, &n) < 0) return NULL;
    if (n != c->nparts) {
        free(values);
        PyErr_SetString(PyExc_ValueError, "one rank per part");
        return NULL;
    }
    lock(&c->lock);
    memcpy(c->rank, values, sizeof(int) * n);
    unlock(&c->lock);
    free(values);
    Py_RETURN_NONE;
}

static PyObject *core_keep_outputs(CoreObject *self, PyObject *args) {
    int keep;
    if (!PyArg_ParseTuple(args, "p", &keep) || !core_of(self)) return NULL;
    lock(&self->core->lock);
    self->core->keep = keep;
    unlock(&self->core->lock);
    Py_RETURN_NONE;
}

/* output(k, slot) -> (bytes, shape, onnx element type) of a kept tensor of the last point (None: not kept) */
static PyObject *core_output(CoreObject *self, PyObject *args) {
    Core *c = core_of(self);
    if (!c) return NULL;
    long long k;
    int slot;
    if (!PyArg_ParseTuple(args, "Li", &k, &slot)) return NULL;
    lock(&c->lock);
    int running = c->npoint;  /* its workers free the tensors of batches that close */
    unlock(&c->lock);
    if (running) {
        PyErr_SetString(PyExc_RuntimeError, "a point is running on this core: read its outputs after end()");
        return NULL;
    }
    if (!c->values || k < 0 || k >= c->batches || slot < c->ninputs || slot >= c->nslots ||
        !c->values[k * c->nslots + slot])
        Py_RETURN_NONE;
    OrtValue *v = c->values[k * c->nslots + slot];
    OrtShape *info = NULL;
    void *data = NULL;
    int type = 0;
    size_t rank = 0;
    int64_t dims[16];
    OrtStatus *st = CALL(S_GetTensorTypeAndShape, ShapeOfFn)(v, &info);
    if (!st) st = CALL(S_GetTensorElementType, ElementTypeFn)(info, &type);
    if (!st) st = CALL(S_GetDimensionsCount, DimsCountFn)(info, &rank);
    if (!st && rank > 16) rank = 16;
    if (!st) st = CALL(S_GetDimensions, DimsFn)(info, dims, rank);
    if (!st) st = CALL(S_GetTensorMutableData, DataFn)(v, &data);
    release(S_ReleaseTensorTypeAndShapeInfo, info);
    if (raise_status(st, "a kept output cannot be read") < 0) return NULL;
    static const int item[] = {0, 4, 1, 1, 2, 2, 4, 8, 0, 1, 2, 8, 4, 8};
    int64_t count = 1;
    PyObject *shape = PyTuple_New((Py_ssize_t)rank);
    if (!shape) return NULL;
    for (size_t d = 0; d < rank; d++) {
        PyObject *dim = PyLong_FromLongLong(dims[d]);
        if (!dim) return Py_DECREF(shape), NULL;
        count *= dims[d], PyTuple_SET_ITEM(shape, d, dim);
    }
    Py_ssize_t bytes = (Py_ssize_t)(count * (type > 0 && type < 14 ? item[type] : 0));
    return Py_BuildValue("y#Ni", (const char *)data, bytes, shape, type);
}

static PyObject *core_issuer_level(CoreObject *self, PyObject *unused) {
    if (!core_of(self)) return NULL;
    return PyUnicode_FromString(self->core->issuer_level[0] ? self->core->issuer_level : "as the workers");
}

static PyMethodDef core_methods[] = {
    {"start", (PyCFunction)core_start, METH_VARARGS, "Start a point: the issuer releases its batches."},
    {"wait", (PyCFunction)core_wait, METH_VARARGS, "Wait (no GIL) for the point's end, the issuer's question, or a timeout."},
    {"answer", (PyCFunction)core_answer, METH_VARARGS, "Answer the issuer: the new release limit, or -1."},
    {"stop", (PyCFunction)core_stop, METH_NOARGS, "Stop the point: nothing more released, queued tasks dropped."},
    {"end", (PyCFunction)core_end, METH_NOARGS, "Wait for the point's end and free it."},
    {"set_model", (PyCFunction)core_set_model, METH_VARARGS, "The performance models per (size, part, kind)."},
    {"model", (PyCFunction)core_model, METH_NOARGS, "The performance models as learnt so far."},
    {"errors", (PyCFunction)core_errors, METH_NOARGS, "The last point's task errors."},
    {"issuer_level", (PyCFunction)core_issuer_level, METH_NOARGS, "The issuer thread's priority."},
    {"set_order", (PyCFunction)core_set_order, METH_VARARGS, "The opara policy's launch order: a rank per part."},
    {"keep_outputs", (PyCFunction)core_keep_outputs, METH_VARARGS, "Keep every output until the next point (tests)."},
    {"output", (PyCFunction)core_output, METH_VARARGS, "A kept tensor of the last point: (bytes, shape, type)."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject CoreType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "staronnx_cli.runtime._core.Core",
    .tp_basicsize = sizeof(CoreObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)core_init,
    .tp_dealloc = (destructor)core_dealloc,
    .tp_methods = core_methods,
    .tp_doc = "The runtime's native core: workers, issuer and scheduler of a point on CPU workers.",
};

/* load(path of libonnxruntime) -> its version: the library dlopen'ed, the API table, one environment */
static PyObject *load(PyObject *self, PyObject *args) {
    const char *path;
    if (!PyArg_ParseTuple(args, "s", &path)) return NULL;
    static const ApiBase *base;
    if (!api) {
        void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (!lib) return PyErr_Format(PyExc_OSError, "cannot load %s: %s", path, dlerror());
        const ApiBase *(*get_base)(void) = (const ApiBase *(*)(void))dlsym(lib, "OrtGetApiBase");
        if (!get_base) return PyErr_Format(PyExc_OSError, "%s has no OrtGetApiBase", path);
        base = get_base();
        const void *const *table = base->get_api(API_VERSION);
        if (!table) return PyErr_Format(PyExc_OSError, "%s does not offer C API version %d", path, API_VERSION);
        api = table;
        if (raise_status(CALL(S_CreateEnv, CreateEnvFn)(3, "staronnx", &env), "no ONNX Runtime environment") < 0 ||
            raise_status(CALL(S_CreateCpuMemoryInfo, CpuInfoFn)(0, 0, &cpu_info), "no CPU memory info") < 0) {
            api = NULL;
            return NULL;
        }
    }
    return PyUnicode_FromString(base->get_version_string());
}

static PyObject *monotonic_ns(PyObject *self, PyObject *unused) { return PyLong_FromLongLong(now_ns()); }

static PyMethodDef methods[] = {
    {"load", load, METH_VARARGS, "Load ONNX Runtime's shared library (its C API); its version."},
    {"monotonic_ns", monotonic_ns, METH_NOARGS, "CLOCK_MONOTONIC in ns (the clock of time.perf_counter)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_core", "The runtime's native core.", -1, methods};

PyMODINIT_FUNC PyInit__core(void) {
    if (PyType_Ready(&CoreType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    Py_INCREF(&CoreType);
    if (PyModule_AddObject(m, "Core", (PyObject *)&CoreType) < 0) return NULL;
    /* the performance model's rule, for a test to hold equal to perfmodel.py's */
    if (PyModule_AddIntConstant(m, "CALIBRATION_SAMPLES", CALIBRATION_SAMPLES) < 0 ||
        PyModule_AddIntConstant(m, "WINDOW", WINDOW) < 0 || PyModule_AddIntConstant(m, "OUTLIER_STDS", OUTLIER_STDS) < 0)
        return NULL;
    return m;
}
