/* OutboxCore: the per-connection queue's hot half (push, take, force, discard, close) in C.
 *
 * Fan-out to K subscribers calls `push` K times per publication; in Python that call was a third of the event
 * loop's time at 1,000 subscribers x 1,000 publications/s. This is the same logic as `_PyOutboxCore` in
 * outbox.py, which stays the reference and the fallback where no C compiler built this module.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

typedef struct {
    PyObject_HEAD
    Py_ssize_t limit;
    PyObject *frames;      /* a list while frames are pending, else NULL (idle: nothing allocated) */
    Py_ssize_t bytes;
    Py_ssize_t messages;
    PyObject *lot;         /* a trio ParkingLot once a consumer waited, else None */
    PyObject *notify;      /* called when the first frame is pending or the box closes, or None */
    PyObject *on_overflow;
    char closed;
} OutboxCore;

static PyObject *empty_bytes;
static PyObject *str_unpark_all, *str_wire, *str_outbox, *str_received, *str_closed, *str_push;
static PyObject *core_type;      /* OutboxCore */
static PyObject *core_push_descr; /* OutboxCore.push, to tell a subclass that overrides it */

static int
core_init(OutboxCore *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"limit", "notify", "on_overflow", NULL};
    Py_ssize_t limit;
    PyObject *notify = Py_None, *on_overflow = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "n|OO", kwlist, &limit, &notify, &on_overflow))
        return -1;
    self->limit = limit;
    Py_CLEAR(self->frames);
    self->bytes = self->messages = 0;
    Py_INCREF(Py_None);
    Py_XSETREF(self->lot, Py_None);
    Py_INCREF(notify);
    Py_XSETREF(self->notify, notify);
    Py_INCREF(on_overflow);
    Py_XSETREF(self->on_overflow, on_overflow);
    self->closed = 0;
    return 0;
}

static PyObject *
core_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    OutboxCore *self = (OutboxCore *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    Py_INCREF(Py_None);
    self->lot = Py_None;
    Py_INCREF(Py_None);
    self->notify = Py_None;
    Py_INCREF(Py_None);
    self->on_overflow = Py_None;
    return (PyObject *)self;
}

static int
core_traverse(OutboxCore *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->frames);
    Py_VISIT(self->lot);
    Py_VISIT(self->notify);
    Py_VISIT(self->on_overflow);
    return 0;
}

static int
core_clear(OutboxCore *self)
{
    Py_CLEAR(self->frames);
    Py_CLEAR(self->lot);
    Py_CLEAR(self->notify);
    Py_CLEAR(self->on_overflow);
    return 0;
}

static void
core_dealloc(OutboxCore *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    core_clear(self);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

/* notify(), else lot.unpark_all(): the consumer has something to do. */
static int
wake(OutboxCore *self)
{
    PyObject *r, *callee;  /* held for the call: it may replace `notify` or `_lot` */
    if (self->notify != NULL && self->notify != Py_None) {
        callee = self->notify;
        Py_INCREF(callee);
        r = PyObject_CallNoArgs(callee);
    } else if (self->lot != NULL && self->lot != Py_None) {
        callee = self->lot;
        Py_INCREF(callee);
        r = PyObject_CallMethodNoArgs(callee, str_unpark_all);
    } else {
        return 0;
    }
    Py_DECREF(callee);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

static Py_ssize_t
frame_size(PyObject *frame)
{
    return PyBytes_CheckExact(frame) ? PyBytes_GET_SIZE(frame) : PyObject_Length(frame);
}

/* 1: queued; 0: refused (closed, or past the limit); -1: an error is set. */
static int
push(OutboxCore *self, PyObject *frame, Py_ssize_t messages)
{
    if (self->closed)
        return 0;
    Py_ssize_t size = frame_size(frame);
    if (size < 0)
        return -1;
    if (self->frames != NULL && PyList_GET_SIZE(self->frames)) {
        if (self->bytes + size > self->limit)
            return 0;
        if (PyList_Append(self->frames, frame) < 0)
            return -1;
        self->bytes += size;
        self->messages += messages;
        return 1;
    }
    PyObject *frames = PyList_New(1);
    if (frames == NULL)
        return -1;
    Py_INCREF(frame);
    PyList_SET_ITEM(frames, 0, frame);
    Py_XSETREF(self->frames, frames);
    self->bytes += size;
    self->messages += messages;
    return wake(self) < 0 ? -1 : 1;
}

static PyObject *
core_push(OutboxCore *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    /* push(frame, messages=0), by position or by name, as the Python twin takes it */
    PyObject *given[2] = {nargs > 0 ? args[0] : NULL, nargs > 1 ? args[1] : NULL};
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    int bad = nargs > 2;
    for (Py_ssize_t i = 0; i < nkw && !bad; i++) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, i);
        int slot = PyUnicode_CompareWithASCIIString(name, "frame") == 0 ? 0
                 : PyUnicode_CompareWithASCIIString(name, "messages") == 0 ? 1 : -1;
        if (slot < 0 || given[slot] != NULL)
            bad = 1;
        else
            given[slot] = args[nargs + i];
    }
    if (bad || given[0] == NULL) {
        PyErr_SetString(PyExc_TypeError, "push(frame, messages=0)");
        return NULL;
    }
    Py_ssize_t messages = 0;
    if (given[1] != NULL) {
        messages = PyLong_AsSsize_t(given[1]);
        if (messages == -1 && PyErr_Occurred())
            return NULL;
    }
    int r = push(self, given[0], messages);
    if (r < 0)
        return NULL;
    return PyBool_FromLong(r);
}

static PyObject *
core_force(OutboxCore *self, PyObject *frame)
{
    Py_ssize_t size = frame_size(frame);
    if (size < 0)
        return NULL;
    self->bytes += size;
    if (self->frames != NULL && PyList_GET_SIZE(self->frames)) {
        if (PyList_Append(self->frames, frame) < 0)
            return NULL;
        Py_RETURN_NONE;
    }
    PyObject *frames = PyList_New(1);
    if (frames == NULL)
        return NULL;
    Py_INCREF(frame);
    PyList_SET_ITEM(frames, 0, frame);
    Py_XSETREF(self->frames, frames);
    if (wake(self) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* The pending frames joined: one copy when all are bytes, else bytes.join's own rules (and errors). */
static PyObject *
join(PyObject *frames)
{
    Py_ssize_t n = PyList_GET_SIZE(frames), total = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PyList_GET_ITEM(frames, i);
        if (!PyBytes_CheckExact(item))
            return PyObject_CallMethod(empty_bytes, "join", "O", frames);
        total += PyBytes_GET_SIZE(item);
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, total);
    if (out == NULL)
        return NULL;
    char *p = PyBytes_AS_STRING(out);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PyList_GET_ITEM(frames, i);
        memcpy(p, PyBytes_AS_STRING(item), (size_t)PyBytes_GET_SIZE(item));
        p += PyBytes_GET_SIZE(item);
    }
    return out;
}

static PyObject *
core_take(OutboxCore *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *frames = self->frames;
    if (frames == NULL || PyList_GET_SIZE(frames) == 0) {
        Py_INCREF(empty_bytes);
        return empty_bytes;
    }
    PyObject *out;
    if (PyList_GET_SIZE(frames) == 1) {
        out = PyList_GET_ITEM(frames, 0);
        Py_INCREF(out);
    } else {
        out = join(frames);
        if (out == NULL)
            return NULL;
    }
    self->frames = NULL;
    self->bytes = self->messages = 0;
    Py_DECREF(frames);
    return out;
}

static PyObject *
core_discard(OutboxCore *self, PyObject *Py_UNUSED(ignored))
{
    Py_ssize_t lost = self->messages;
    Py_CLEAR(self->frames);
    self->bytes = self->messages = 0;
    return PyLong_FromSsize_t(lost);
}

static PyObject *
core_close(OutboxCore *self, PyObject *Py_UNUSED(ignored))
{
    if (!self->closed) {
        self->closed = 1;
        if (wake(self) < 0)
            return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
core_wake(OutboxCore *self, PyObject *Py_UNUSED(ignored))
{
    if (wake(self) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
get_pending_bytes(OutboxCore *self, void *closure)
{
    return PyLong_FromSsize_t(self->bytes);
}

static PyObject *
get_pending_messages(OutboxCore *self, void *closure)
{
    return PyLong_FromSsize_t(self->messages);
}

static PyObject *
get_closed(OutboxCore *self, void *closure)
{
    return PyBool_FromLong(self->closed);
}

static int
set_closed(OutboxCore *self, PyObject *value, void *closure)
{
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete closed");
        return -1;
    }
    int truth = PyObject_IsTrue(value);  /* any value, read as a truth value, as the Python twin's */
    if (truth < 0)
        return -1;
    self->closed = (char)truth;
    return 0;
}

static PyObject *
get_frames(OutboxCore *self, void *closure)
{
    if (self->frames != NULL && PyList_GET_SIZE(self->frames)) {
        Py_INCREF(self->frames);
        return self->frames;
    }
    return PyTuple_New(0);
}

static PyMethodDef core_methods[] = {
    {"push", (PyCFunction)(void (*)(void))core_push, METH_FASTCALL | METH_KEYWORDS,
     "Queue `frame` (holding `messages` publications); False, and nothing queued, if it would overflow or the box is closed."},
    {"force", (PyCFunction)core_force, METH_O, "Queue a control frame (a disconnect notice, a pong) even past the limit."},
    {"take", (PyCFunction)core_take, METH_NOARGS, "Everything pending, joined, and the queue emptied."},
    {"discard", (PyCFunction)core_discard, METH_NOARGS, "Drop everything pending; return how many messages were lost."},
    {"close", (PyCFunction)core_close, METH_NOARGS, "No more pushes; the consumer drains what is pending and then stops."},
    {"_wake", (PyCFunction)core_wake, METH_NOARGS, "Run `notify`, or wake whoever waits in the parking lot."},
    {NULL},
};

static PyMemberDef core_members[] = {
    {"limit", T_PYSSIZET, offsetof(OutboxCore, limit), 0, "the pending bytes past which `push` refuses"},
    {"notify", T_OBJECT, offsetof(OutboxCore, notify), 0, "called when frames become pending or the box closes"},
    {"on_overflow", T_OBJECT, offsetof(OutboxCore, on_overflow), 0, "run once by `overflow`"},
    {"_lot", T_OBJECT, offsetof(OutboxCore, lot), 0, "the consumer's parking lot, or None"},
    {"_bytes", T_PYSSIZET, offsetof(OutboxCore, bytes), 0, "pending bytes"},
    {"_messages", T_PYSSIZET, offsetof(OutboxCore, messages), 0, "pending publications"},
    {NULL},
};

static PyGetSetDef core_getset[] = {
    {"closed", (getter)get_closed, (setter)set_closed, "no more pushes", NULL},
    {"pending_bytes", (getter)get_pending_bytes, NULL, "bytes queued", NULL},
    {"pending_messages", (getter)get_pending_messages, NULL, "publications queued", NULL},
    {"_frames", (getter)get_frames, NULL, "the pending frames (a list), or ()", NULL},
    {NULL},
};

static PyType_Slot core_slots[] = {
    {Py_tp_doc, "The hot half of hub.core.outbox.Outbox (see _PyOutboxCore there)."},
    {Py_tp_new, core_new},
    {Py_tp_init, core_init},
    {Py_tp_dealloc, core_dealloc},
    {Py_tp_traverse, core_traverse},
    {Py_tp_clear, core_clear},
    {Py_tp_methods, core_methods},
    {Py_tp_members, core_members},
    {Py_tp_getset, core_getset},
    {0, NULL},
};

static PyType_Spec core_spec = {
    .name = "hub.core._outbox.OutboxCore",
    .basicsize = sizeof(OutboxCore),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = core_slots,
};

/* Reading a session's __slots__ attribute straight from its object: the fan-out reads three per subscriber,
 * and the generic attribute lookup was most of the loop. A type whose attribute is anything else (a property,
 * a custom __getattribute__) goes through getattr. The offsets are those of one type at one version: a change
 * to the class (PyType_Modified drops its version tag) has them looked up again. */
static PyTypeObject *slots_type;  /* strong: its address cannot be reused while cached */
static unsigned int slots_version;  /* slots_type's tp_version_tag when the offsets were found (0: none) */
static Py_ssize_t off_wire = -1, off_outbox = -1, off_received = -1;

static inline int
slots_current(PyTypeObject *tp)
{
    return tp == slots_type && slots_version != 0 && (tp->tp_flags & Py_TPFLAGS_VALID_VERSION_TAG)
        && tp->tp_version_tag == slots_version;
}

static Py_ssize_t
slot_offset(PyTypeObject *tp, PyObject *name)
{
    PyObject *d = _PyType_Lookup(tp, name);
    if (d == NULL || Py_TYPE(d) != &PyMemberDescr_Type)
        return -1;
    PyMemberDef *m = ((PyMemberDescrObject *)d)->d_member;
    if (m->type != T_OBJECT_EX || (m->flags & READONLY))
        return -1;
    return m->offset;
}

static void
resolve_slots(PyTypeObject *tp)
{
    int generic = tp->tp_getattro == PyObject_GenericGetAttr && tp->tp_setattro == PyObject_GenericSetAttr;
    off_wire = generic ? slot_offset(tp, str_wire) : -1;
    off_outbox = generic ? slot_offset(tp, str_outbox) : -1;
    off_received = generic ? slot_offset(tp, str_received) : -1;
    /* _PyType_Lookup gave the type a version tag; without one (an uncacheable type) every call looks again */
    slots_version = (tp->tp_flags & Py_TPFLAGS_VALID_VERSION_TAG) ? tp->tp_version_tag : 0;
    Py_INCREF(tp);
    Py_XSETREF(slots_type, tp);
}

/* A new reference to obj.<name>, from its slot when `off` >= 0 and the slot is set. */
static inline PyObject *
get_slot(PyObject *obj, Py_ssize_t off, PyObject *name)
{
    if (off >= 0) {
        PyObject *v = *(PyObject **)((char *)obj + off);
        if (v != NULL) {
            Py_INCREF(v);
            return v;
        }
    }
    return PyObject_GetAttr(obj, name);
}

/* session.received += messages */
static int
add_received(PyObject *session, PyObject *messages)
{
    if (off_received >= 0) {
        PyObject **slot = (PyObject **)((char *)session + off_received);
        PyObject *old = *slot;
        if (old != NULL) {
            PyObject *sum = PyNumber_Add(old, messages);
            if (sum == NULL)
                return -1;
            *slot = sum;
            Py_DECREF(old);
            return 0;
        }
    }
    PyObject *received = PyObject_GetAttr(session, str_received);
    if (received == NULL)
        return -1;
    PyObject *sum = PyNumber_Add(received, messages);
    Py_DECREF(received);
    if (sum == NULL)
        return -1;
    int failed = PyObject_SetAttr(session, str_received, sum);
    Py_DECREF(sum);
    return failed;
}

/* fan_out(sessions, encode, messages, frames) -> (targets, pushed, slow): Hub._fan_out's loop (see
 * `fan_out_py` in outbox.py, its reference): each session's frame is frames[session.wire], made by encode(wire)
 * the first time; a push that is refused puts the session in `slow` unless it is already closed. */
static PyObject *
fan_out(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4 || !PyDict_Check(args[3])) {
        PyErr_SetString(PyExc_TypeError, "fan_out(sessions, encode, messages, frames: dict)");
        return NULL;
    }
    PyObject *encode = args[1], *frames = args[3];
    Py_ssize_t messages = PyLong_AsSsize_t(args[2]);
    if (messages == -1 && PyErr_Occurred())
        return NULL;
    PyObject *seq = PySequence_Tuple(args[0]);  /* a tuple is itself; callbacks cannot change what is iterated */
    if (seq == NULL)
        return NULL;
    PyObject *slow = PyList_New(0), *messages_obj = args[2];
    PyObject *last = NULL, *frame = NULL;  /* the previous session's wire and its frame (held: callbacks run between) */
    PyTypeObject *checked = NULL;          /* the last outbox type found not to override push */
    Py_ssize_t targets = 0, pushed = 0, n = PyTuple_GET_SIZE(seq);
    if (slow == NULL)
        goto error;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *session = PyTuple_GET_ITEM(seq, i);
        if (!slots_current(Py_TYPE(session)))
            resolve_slots(Py_TYPE(session));
        PyObject *wire = get_slot(session, off_wire, str_wire);
        if (wire == NULL)
            goto error;
        if (wire != last) {
            if (wire == Py_None) {
                Py_DECREF(wire);
                continue;
            }
            PyObject *found = PyDict_GetItemWithError(frames, wire);  /* borrowed */
            if (found != NULL) {
                Py_INCREF(found);
            } else {
                if (PyErr_Occurred()) {
                    Py_DECREF(wire);
                    goto error;
                }
                found = PyObject_CallOneArg(encode, wire);
                if (found == NULL || PyDict_SetItem(frames, wire, found) < 0) {
                    Py_XDECREF(found);
                    Py_DECREF(wire);
                    goto error;
                }
            }
            Py_XSETREF(frame, found);
            Py_INCREF(wire);
            Py_XSETREF(last, wire);
        }
        Py_DECREF(wire);
        targets++;
        PyObject *outbox = get_slot(session, off_outbox, str_outbox);
        if (outbox == NULL)
            goto error;
        int r;
        PyTypeObject *tp = Py_TYPE(outbox);
        if (tp != checked && PyObject_TypeCheck(outbox, (PyTypeObject *)core_type)
                && _PyType_Lookup(tp, str_push) == core_push_descr)
            checked = tp;
        if (tp == checked) {
            r = push((OutboxCore *)outbox, frame, messages);
        } else {
            PyObject *res = PyObject_CallMethodObjArgs(outbox, str_push, frame, messages_obj, NULL);
            r = res == NULL ? -1 : PyObject_IsTrue(res);
            Py_XDECREF(res);
        }
        Py_DECREF(outbox);
        if (r < 0)
            goto error;
        if (r) {
            if (add_received(session, messages_obj) < 0)
                goto error;
            pushed++;
        } else {
            PyObject *closed = PyObject_GetAttr(session, str_closed);
            if (closed == NULL)
                goto error;
            int is_closed = PyObject_IsTrue(closed);
            Py_DECREF(closed);
            if (is_closed < 0 || (!is_closed && PyList_Append(slow, session) < 0))
                goto error;
        }
    }
    Py_DECREF(seq);
    Py_XDECREF(last);
    Py_XDECREF(frame);
    return Py_BuildValue("nnN", targets, pushed, slow);
error:
    Py_DECREF(seq);
    Py_XDECREF(last);
    Py_XDECREF(frame);
    Py_XDECREF(slow);
    return NULL;
}

static PyMethodDef module_methods[] = {
    {"fan_out", (PyCFunction)(void (*)(void))fan_out, METH_FASTCALL,
     "fan_out(sessions, encode, messages, frames) -> (targets, pushed, slow): Hub._fan_out's loop."},
    {NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "_outbox", "The outbox's hot half in C (see outbox.py).", -1, module_methods,
};

PyMODINIT_FUNC
PyInit__outbox(void)
{
    empty_bytes = PyBytes_FromStringAndSize(NULL, 0);
    str_unpark_all = PyUnicode_InternFromString("unpark_all");
    str_wire = PyUnicode_InternFromString("wire");
    str_outbox = PyUnicode_InternFromString("outbox");
    str_received = PyUnicode_InternFromString("received");
    str_closed = PyUnicode_InternFromString("closed");
    str_push = PyUnicode_InternFromString("push");
    if (empty_bytes == NULL || str_unpark_all == NULL || str_wire == NULL || str_outbox == NULL
            || str_received == NULL || str_closed == NULL || str_push == NULL)
        return NULL;
    PyObject *m = PyModule_Create(&moduledef);
    if (m == NULL)
        return NULL;
    PyObject *tp = PyType_FromSpec(&core_spec);
    if (tp == NULL) {
        Py_DECREF(m);
        return NULL;
    }
    core_type = tp;  /* the module keeps it (below); this pointer is borrowed */
    core_push_descr = _PyType_Lookup((PyTypeObject *)tp, str_push);
    Py_INCREF(tp);
    if (core_push_descr == NULL || PyModule_AddObject(m, "OutboxCore", tp) < 0) {
        Py_DECREF(tp);
        Py_DECREF(tp);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
