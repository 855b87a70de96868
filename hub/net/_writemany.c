/* Writer: a thread of its own that makes one pass's non-blocking writes, (fd, bytes) pairs, without the GIL.
 *
 * On loopback about half of a delivery's cost is the kernel's (the write, and the receiving socket's work done
 * in the writer's context). The fan-out flusher hands each big pass to this thread, so that share runs on the
 * other core while the event loop goes on parsing and encoding. The thread never touches a Python object, so it
 * never waits for the GIL: the event loop submits a pass, waits for the eventfd `fileno()` to become readable,
 * then collects the writes that did not take all their bytes.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>

typedef struct {
    int fd;
    const char *buf;
    Py_ssize_t len;
    Py_ssize_t result;
} job_t;

enum { IDLE, SUBMITTED, DONE };

typedef struct {
    PyObject_HEAD
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    pid_t owner;      /* the process the thread runs in (0: none): a forked child starts its own */
    int efd;
    int state;
    int stop;
    job_t *jobs;
    Py_ssize_t n;
    PyObject *held;   /* the pass's bytes, alive until collected */
} Writer;

static void
write_all(job_t *jobs, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++) {
        ssize_t sent;
        do {
            sent = write(jobs[i].fd, jobs[i].buf, (size_t)jobs[i].len);
        } while (sent < 0 && errno == EINTR);
        if (sent < 0)
            jobs[i].result = (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -(Py_ssize_t)errno;
        else
            jobs[i].result = sent;
    }
}

static void *
run(void *arg)
{
    Writer *w = arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL); /* signals are the event loop's */
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (w->state != SUBMITTED && !w->stop)
            pthread_cond_wait(&w->cv, &w->mu);
        if (w->state != SUBMITTED)
            break;
        job_t *jobs = w->jobs;
        Py_ssize_t n = w->n;
        pthread_mutex_unlock(&w->mu);
        write_all(jobs, n);
        pthread_mutex_lock(&w->mu);
        w->state = DONE;
        uint64_t one = 1;
        ssize_t r;
        do {
            r = write(w->efd, &one, sizeof one);
        } while (r < 0 && errno == EINTR);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

static int
Writer_init(Writer *w, PyObject *args, PyObject *kwds)
{
    if (!PyArg_ParseTuple(args, ":Writer"))
        return -1;
    if (w->efd >= 0)
        return 0;
    w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->efd < 0) {
        w->efd = -1;
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    return 0;
}

static int
start_thread(Writer *w)
{
    pid_t pid = getpid();
    if (w->owner == pid)
        return 0;
    /* Never started, or started by the process this one was forked from (the thread did not come along). */
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    w->state = IDLE;
    w->stop = 0;
    int err = pthread_create(&w->thread, NULL, run, w);
    if (err) {
        errno = err;
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    w->owner = pid;
    return 0;
}

static PyObject *
Writer_submit(Writer *w, PyObject *args)
{
    PyObject *fds, *datas;
    if (!PyArg_ParseTuple(args, "O!O!:submit", &PyList_Type, &fds, &PyList_Type, &datas))
        return NULL;
    if (w->efd < 0) {
        PyErr_SetString(PyExc_ValueError, "Writer is closed");
        return NULL;
    }
    if (w->held != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Writer: a pass is in progress (collect it first)");
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(fds);
    if (PyList_GET_SIZE(datas) != n) {
        PyErr_SetString(PyExc_ValueError, "Writer.submit: fds and datas differ in length");
        return NULL;
    }
    PyObject *held = PyList_GetSlice(datas, 0, n); /* our own references: the caller may change its list */
    if (held == NULL)
        return NULL;
    job_t *jobs = PyMem_Malloc((n ? n : 1) * sizeof(job_t));
    if (jobs == NULL) {
        Py_DECREF(held);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *data = PyList_GET_ITEM(held, i);
        long fd = PyLong_AsLong(PyList_GET_ITEM(fds, i));
        if (fd == -1 && PyErr_Occurred())
            goto fail;
        if (!PyBytes_Check(data)) {
            PyErr_SetString(PyExc_TypeError, "Writer.submit: datas must be bytes");
            goto fail;
        }
        jobs[i].fd = (int)fd;
        jobs[i].buf = PyBytes_AS_STRING(data);
        jobs[i].len = PyBytes_GET_SIZE(data);
    }
    if (start_thread(w) < 0)
        goto fail;
    pthread_mutex_lock(&w->mu);
    w->jobs = jobs;
    w->n = n;
    w->held = held;
    w->state = SUBMITTED;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    Py_RETURN_NONE;
fail:
    PyMem_Free(jobs);
    Py_DECREF(held);
    return NULL;
}

static PyObject *
Writer_collect(Writer *w, PyObject *Py_UNUSED(ignored))
{
    if (w->held == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Writer.collect: nothing was submitted");
        return NULL;
    }
    pthread_mutex_lock(&w->mu);
    int state = w->state;
    pthread_mutex_unlock(&w->mu);
    if (state != DONE) {
        PyErr_SetString(PyExc_BlockingIOError, "Writer.collect: the pass is not done (wait for fileno())");
        return NULL;
    }
    uint64_t count;
    ssize_t r;
    do {
        r = read(w->efd, &count, sizeof count);
    } while (r < 0 && errno == EINTR);
    PyObject *out = PyList_New(0);
    if (out == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < w->n; i++) {
        if (w->jobs[i].result == w->jobs[i].len)
            continue;
        PyObject *item = Py_BuildValue("(nn)", i, w->jobs[i].result);
        if (item == NULL || PyList_Append(out, item) < 0) {
            Py_XDECREF(item);
            Py_DECREF(out);
            return NULL;
        }
        Py_DECREF(item);
    }
    PyMem_Free(w->jobs);
    w->jobs = NULL;
    w->n = 0;
    Py_CLEAR(w->held);
    w->state = IDLE;
    return out;
}

static void
stop_thread(Writer *w)
{
    if (w->owner != getpid())
        return;
    pthread_mutex_lock(&w->mu);
    w->stop = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    Py_BEGIN_ALLOW_THREADS
    pthread_join(w->thread, NULL); /* after the pass in progress, if any */
    Py_END_ALLOW_THREADS
    w->owner = 0;
}

static PyObject *
Writer_close(Writer *w, PyObject *Py_UNUSED(ignored))
{
    stop_thread(w);
    if (w->efd >= 0) {
        close(w->efd);
        w->efd = -1;
    }
    PyMem_Free(w->jobs);
    w->jobs = NULL;
    Py_CLEAR(w->held);
    Py_RETURN_NONE;
}

static PyObject *
Writer_fileno(Writer *w, PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromLong(w->efd);
}

static PyObject *
Writer_busy(Writer *w, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(w->held != NULL);
}

static PyObject *
Writer_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    Writer *w = (Writer *)type->tp_alloc(type, 0);
    if (w != NULL)
        w->efd = -1;
    return (PyObject *)w;
}

static void
Writer_dealloc(Writer *w)
{
    PyObject *r = Writer_close(w, NULL);
    Py_XDECREF(r);
    Py_TYPE(w)->tp_free((PyObject *)w);
}

static PyMethodDef Writer_methods[] = {
    {"submit", (PyCFunction)Writer_submit, METH_VARARGS,
     "submit(fds, datas): start writing datas[i] to fds[i] (non-blocking fds) in the thread; one pass at a time."},
    {"collect", (PyCFunction)Writer_collect, METH_NOARGS,
     "collect() -> [(index, result)] for the writes that did not take all their bytes (result: bytes written,\n"
     "0 if the socket was full, or -errno); call it once fileno() is readable."},
    {"fileno", (PyCFunction)Writer_fileno, METH_NOARGS, "The eventfd that becomes readable when a pass is done."},
    {"close", (PyCFunction)Writer_close, METH_NOARGS, "Stop the thread (after the pass in progress) and close the eventfd."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Writer_getset[] = {
    {"busy", (getter)Writer_busy, NULL, "A pass was submitted and not yet collected.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject WriterType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "hub.net._writemany.Writer",
    .tp_basicsize = sizeof(Writer),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A thread that makes batches of non-blocking writes without the GIL.",
    .tp_new = Writer_new,
    .tp_init = (initproc)Writer_init,
    .tp_dealloc = (destructor)Writer_dealloc,
    .tp_methods = Writer_methods,
    .tp_getset = Writer_getset,
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_writemany", NULL, -1, NULL};

PyMODINIT_FUNC
PyInit__writemany(void)
{
    if (PyType_Ready(&WriterType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&WriterType);
    if (PyModule_AddObject(m, "Writer", (PyObject *)&WriterType) < 0) {
        Py_DECREF(&WriterType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
