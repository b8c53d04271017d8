/* Waits that do not hold the GIL and do not let a core fall asleep: the runtime's hot path (issue 25).
 *
 * On the machines we measured, a thread blocked in the kernel wakes 20-40 us after it is signalled, and its first
 * microseconds run on cold caches; StarPU's workers poll for their next task for that reason. Python cannot spin
 * without holding the GIL (and a thread spinning with it makes every other thread wait up to the 5 ms switch
 * interval), so the spin is here, in C, with the GIL released:
 *
 *   wait_change(bell, seen, spin_ns) -> value   spin while the int64 `bell` == seen, at most spin_ns
 *   wait_until(bell, seen, deadline_ns, spin_ns, rings=()) -> value
 *                                               ring each bell of `rings` once the GIL is released, then sleep until
 *                                               deadline_ns - spin_ns (CLOCK_MONOTONIC, the clock of
 *                                               time.perf_counter on Linux), then spin to deadline_ns; return early
 *                                               when `bell` changes (checked at least every 100 us)
 *
 * `bell` is any writable buffer of at least 8 bytes (a numpy int64 array of one element): whoever hands work to the
 * waiting thread increments it. Spinning threads yield the core every 20 us, so a thread that is due (the issuer,
 * another worker) is not kept off it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <sched.h>
#include <stdint.h>
#include <time.h>

static inline int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

#define YIELD_NS 20000

static int get_bell(PyObject *obj, Py_buffer *view) {
    if (PyObject_GetBuffer(obj, view, PyBUF_WRITABLE) < 0) return -1;
    if (view->len < 8 || ((uintptr_t)view->buf % 8) != 0) {
        PyBuffer_Release(view);
        PyErr_SetString(PyExc_ValueError, "the bell must be an aligned writable buffer of at least 8 bytes");
        return -1;
    }
    return 0;
}

/* Spin until the bell changes or `until` (ns) passes; the value it holds then. GIL released by the caller.
 * No PAUSE in the loop: in a VM, a PAUSE loop makes the hypervisor deschedule the virtual CPU (pause-loop exiting),
 * which is the very sleep this avoids; the core is yielded every 20 us instead, to any thread that is due. */
static int64_t spin(volatile int64_t *word, int64_t seen, int64_t until) {
    int64_t value;
    int64_t next_yield = now_ns() + YIELD_NS;
    unsigned n = 0;
    while ((value = __atomic_load_n(word, __ATOMIC_ACQUIRE)) == seen) {
        if ((++n & 63) == 0) {
            int64_t t = now_ns();
            if (t >= until) break;
            if (t >= next_yield) {
                sched_yield();
                next_yield = t + YIELD_NS;
            }
        }
    }
    return value;
}

static PyObject *wait_change(PyObject *self, PyObject *args) {
    PyObject *obj;
    long long seen, spin_ns;
    Py_buffer view;
    int64_t value;
    if (!PyArg_ParseTuple(args, "OLL", &obj, &seen, &spin_ns) || get_bell(obj, &view) < 0) return NULL;
    Py_BEGIN_ALLOW_THREADS
    value = spin((volatile int64_t *)view.buf, seen, now_ns() + spin_ns);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    return PyLong_FromLongLong(value);
}

#define MAX_RINGS 64

static PyObject *wait_until(PyObject *self, PyObject *args) {
    PyObject *obj, *rings = NULL;
    long long seen, deadline, spin_ns;
    Py_buffer view, few_views[MAX_RINGS], *ring_views = few_views;
    Py_ssize_t n_rings = 0;
    int64_t value;
    if (!PyArg_ParseTuple(args, "OLLL|O", &obj, &seen, &deadline, &spin_ns, &rings) || get_bell(obj, &view) < 0)
        return NULL;
    if (rings != NULL && rings != Py_None) {
        PyObject *seq = PySequence_Fast(rings, "rings must be a sequence of bells");
        if (seq == NULL) { PyBuffer_Release(&view); return NULL; }
        Py_ssize_t count = PySequence_Fast_GET_SIZE(seq);
        if (count > MAX_RINGS) {  /* every bell is rung: one left unrung is a worker that sleeps through its task */
            ring_views = PyMem_Malloc(sizeof(Py_buffer) * count);
            if (ring_views == NULL) { Py_DECREF(seq); PyBuffer_Release(&view); return PyErr_NoMemory(); }
        }
        for (Py_ssize_t i = 0; i < count; i++) {
            if (get_bell(PySequence_Fast_GET_ITEM(seq, i), &ring_views[n_rings]) < 0) {
                for (Py_ssize_t j = 0; j < n_rings; j++) PyBuffer_Release(&ring_views[j]);
                if (ring_views != few_views) PyMem_Free(ring_views);
                Py_DECREF(seq);
                PyBuffer_Release(&view);
                return NULL;
            }
            n_rings++;
        }
        Py_DECREF(seq);
    }
    Py_BEGIN_ALLOW_THREADS
    /* the workers handed tasks are told only now, with the GIL free: they take it without waiting for us */
    for (Py_ssize_t i = 0; i < n_rings; i++) __atomic_add_fetch((int64_t *)ring_views[i].buf, 1, __ATOMIC_RELEASE);
    volatile int64_t *word = (volatile int64_t *)view.buf;
    for (;;) {
        value = __atomic_load_n(word, __ATOMIC_ACQUIRE);
        int64_t left = deadline - now_ns();
        if (value != seen || left <= 0) break;
        if (left > spin_ns) {
            int64_t nap = left - spin_ns < 100000 ? left - spin_ns : 100000;
            struct timespec ts = {0, (long)nap};
            nanosleep(&ts, NULL);
        } else {
            value = spin(word, seen, deadline);
            break;
        }
    }
    Py_END_ALLOW_THREADS
    for (Py_ssize_t j = 0; j < n_rings; j++) PyBuffer_Release(&ring_views[j]);
    if (ring_views != few_views) PyMem_Free(ring_views);
    PyBuffer_Release(&view);
    return PyLong_FromLongLong(value);
}

static PyObject *monotonic_ns(PyObject *self, PyObject *unused) {
    return PyLong_FromLongLong(now_ns());
}

static PyMethodDef methods[] = {
    {"wait_change", wait_change, METH_VARARGS, "Spin without the GIL while bell == seen, at most spin_ns."},
    {"wait_until", wait_until, METH_VARARGS,
     "Ring `rings` once the GIL is released, then sleep and spin without it until deadline_ns (CLOCK_MONOTONIC) "
     "or until bell != seen."},
    {"monotonic_ns", monotonic_ns, METH_NOARGS, "CLOCK_MONOTONIC in ns (the clock of time.perf_counter)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_hotpath", "GIL-free waits of the runtime's hot path.",
                                    -1, methods};

PyMODINIT_FUNC PyInit__hotpath(void) { return PyModule_Create(&module); }
