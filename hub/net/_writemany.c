/* write_many(fds, datas): one non-blocking write per (fd, data) pair, all with the GIL released.
 *
 * The fan-out flusher hands each pass's writes to a worker thread through this call, so the kernel's
 * share of a delivery (on loopback, about half its cost) runs beside the interpreter instead of
 * inside it. Returns [(index, result), ...] for the writes that did not take all their bytes only:
 * result is the bytes written (0 when the socket was full) or -errno.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <unistd.h>

typedef struct {
    int fd;
    const char *buf;
    Py_ssize_t len;
    Py_ssize_t result;
} job_t;

static PyObject *
write_many(PyObject *self, PyObject *args)
{
    PyObject *fds, *datas;
    if (!PyArg_ParseTuple(args, "O!O!:write_many", &PyList_Type, &fds, &PyList_Type, &datas))
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(fds);
    if (PyList_GET_SIZE(datas) != n) {
        PyErr_SetString(PyExc_ValueError, "write_many: fds and datas differ in length");
        return NULL;
    }
    /* Own references for the call: another thread may change the lists while the GIL is released. */
    PyObject *held = PyList_GetSlice(datas, 0, n);
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
            PyErr_SetString(PyExc_TypeError, "write_many: datas must be bytes");
            goto fail;
        }
        jobs[i].fd = (int)fd;
        jobs[i].buf = PyBytes_AS_STRING(data);
        jobs[i].len = PyBytes_GET_SIZE(data);
    }
    Py_BEGIN_ALLOW_THREADS
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
    Py_END_ALLOW_THREADS
    PyObject *out = PyList_New(0);
    if (out == NULL)
        goto fail;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (jobs[i].result == jobs[i].len)
            continue;
        PyObject *item = Py_BuildValue("(nn)", i, jobs[i].result);
        if (item == NULL || PyList_Append(out, item) < 0) {
            Py_XDECREF(item);
            Py_DECREF(out);
            goto fail;
        }
        Py_DECREF(item);
    }
    PyMem_Free(jobs);
    Py_DECREF(held);
    return out;
fail:
    PyMem_Free(jobs);
    Py_DECREF(held);
    return NULL;
}

static PyMethodDef methods[] = {
    {"write_many", write_many, METH_VARARGS,
     "write_many(fds, datas) -> [(index, result)] for the writes that did not take all their bytes\n"
     "(result: bytes written, 0 if the socket was full, or -errno); the GIL is released for all of them."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_writemany", NULL, -1, methods};

PyMODINIT_FUNC
PyInit__writemany(void)
{
    return PyModule_Create(&module);
}
