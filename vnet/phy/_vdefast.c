/* Compiled forwarding fast path for VDE datagram ports (vnet.phy._vdefast).
 *
 * Why: on the 60-byte unicast blast the Python data path spent ~2 us per frame
 * in the interpreter on top of the recv/send system calls (docs/results-switch.md).
 * This module drains a port's datagram socket in C and forwards the one case
 * that dominates traffic -- an untagged unicast frame whose source is already
 * learned on the ingress port and whose destination is learned on another
 * forwarding VDE port with a single endpoint -- straight to that port's socket.
 *
 * Everything else (learning, flooding, VLANs, STP, hub mode, bad sizes, ports
 * wrapped by capture or a wirefilter) is handed to the Python switch engine
 * unchanged, so the engine stays the single source of truth: this code reads
 * the engine's MAC table (MacTable.entries, a dict of key -> [port, tick]),
 * refreshes the tick of the source entry as the engine would, and checks the
 * engine's per-port `fast` flag and the port's current transmit/receive
 * callables before using a port, so wrapping a port in Python takes it off the
 * fast path at once.
 *
 * Counters are accumulated in C and added to the Port objects before any
 * Python code runs (before a slow-path frame, and at the end of each pump), so
 * they are exact whenever Python can look at them.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>

typedef struct {
    PyObject *rec;       /* SwitchPort */
    PyObject *port;      /* Port */
    PyObject *input;     /* the switch's receive callable for this port */
    PyObject *transmit;  /* the single-endpoint transmit we may bypass, or NULL */
    int fd;              /* the data socket that transmit sends on */
    long long rx_frames, rx_bytes, tx_frames, tx_bytes, tx_dropped;
    int dirty;
    /* Output queue: frames the peer's socket had no room for (EAGAIN), sent when it drains.
     * The peer's own queue is only net.unix.max_dgram_qlen (10) datagrams deep, so without
     * this a reader that is scheduled a little late loses frames. Bounded; allocated on
     * first use. */
    unsigned char **qdata; /* ring of qmax frame copies */
    Py_ssize_t *qlen;
    Py_ssize_t qbytes;
    int qhead, qcount;
    int blocked;         /* Python has been told to wait for writability */
    int lossy;           /* flow-control watchdog fired: drop instead of pausing senders
                          * until the queue has drained once */
} PortSlot;

typedef struct {
    PyObject_HEAD
    PyObject *table;     /* MacTable */
    PyObject *entries;   /* MacTable.entries (dict subclass) */
    PyObject *on_blocked; /* called with a port index when its output queue starts filling */
    Py_ssize_t max_frame;
    Py_ssize_t bufsize;
    int qmax;
    char flow_control;     /* pause senders at the high-water mark (else only queue, then drop) */
    Py_ssize_t qbytes_max;
    int nslots;
    PortSlot *slots;
    unsigned char *buf;
    unsigned long long fast_frames, slow_frames, queued, queue_drops;
} Forwarder;

static PyObject *s_fast, *s_transmit, *s_receive, *s_tick, *s_entries;
static PyObject *s_rx_frames, *s_rx_bytes, *s_tx_frames, *s_tx_bytes, *s_tx_dropped;

static void slot_clear(PortSlot *s, int qmax) {
    for (int k = 0; k < s->qcount; k++)
        PyMem_Free(s->qdata[(s->qhead + k) % qmax]);
    s->qhead = s->qcount = 0;
    s->qbytes = 0;
    s->blocked = 0;
    s->lossy = 0;
    PyMem_Free(s->qdata);
    PyMem_Free(s->qlen);
    s->qdata = NULL;
    s->qlen = NULL;
    Py_CLEAR(s->rec);
    Py_CLEAR(s->port);
    Py_CLEAR(s->input);
    Py_CLEAR(s->transmit);
    s->fd = -1;
}

static int add_counter(PyObject *obj, PyObject *name, long long delta) {
    if (delta == 0)
        return 0;
    PyObject *cur = PyObject_GetAttr(obj, name);
    if (cur == NULL)
        return -1;
    PyObject *d = PyLong_FromLongLong(delta);
    if (d == NULL) {
        Py_DECREF(cur);
        return -1;
    }
    PyObject *sum = PyNumber_Add(cur, d);
    Py_DECREF(cur);
    Py_DECREF(d);
    if (sum == NULL)
        return -1;
    int r = PyObject_SetAttr(obj, name, sum);
    Py_DECREF(sum);
    return r;
}

/* Move the C-side counter deltas into the Port objects. */
static int flush_counters(Forwarder *self) {
    int rc = 0;
    for (int i = 0; i < self->nslots; i++) {
        PortSlot *s = &self->slots[i];
        if (!s->dirty)
            continue;
        s->dirty = 0;
        if (s->port != NULL) {
            if (add_counter(s->port, s_rx_frames, s->rx_frames) < 0 ||
                add_counter(s->port, s_rx_bytes, s->rx_bytes) < 0 ||
                add_counter(s->port, s_tx_frames, s->tx_frames) < 0 ||
                add_counter(s->port, s_tx_bytes, s->tx_bytes) < 0 ||
                add_counter(s->port, s_tx_dropped, s->tx_dropped) < 0)
                rc = -1;
        }
        s->rx_frames = s->rx_bytes = s->tx_frames = s->tx_bytes = s->tx_dropped = 0;
    }
    return rc;
}

/* 1 if attribute `name` of `obj` is `expect` (identity), 0 if not, -1 on error. */
static int attr_is(PyObject *obj, PyObject *name, PyObject *expect) {
    PyObject *v = PyObject_GetAttr(obj, name);
    if (v == NULL)
        return -1;
    int r = v == expect;
    Py_DECREF(v);
    return r;
}

/* May port `s` take part in the fast path right now? (ingress: its receive is still the
 * switch's; egress: its transmit is still the plain single-endpoint send) */
static int slot_usable(PortSlot *s, int egress) {
    if (s->rec == NULL)
        return 0;
    int r = attr_is(s->rec, s_fast, Py_True);
    if (r <= 0)
        return r;
    if (egress) {
        if (s->transmit == NULL || s->fd < 0)
            return 0;
        return attr_is(s->port, s_transmit, s->transmit);
    }
    return attr_is(s->port, s_receive, s->input);
}

static int Forwarder_init(Forwarder *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"table", "nports", "max_frame", "on_blocked", "queue",
                             "queue_bytes", NULL};
    PyObject *table, *on_blocked;
    int nports, qmax = 1000;
    Py_ssize_t max_frame, qbytes_max = 2 << 20;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OinO|in", kwlist, &table, &nports, &max_frame,
                                     &on_blocked, &qmax, &qbytes_max))
        return -1;
    if (nports < 1 || nports > 65536 || max_frame < 14 || max_frame > 65535 || qmax < 1 ||
        qmax > 65536 || qbytes_max < 0) {
        PyErr_SetString(PyExc_ValueError,
                        "nports must be 1..65536, max_frame 14..65535, queue 1..65536");
        return -1;
    }
    if (self->slots != NULL) {
        for (int i = 0; i < self->nslots; i++)
            slot_clear(&self->slots[i], self->qmax);
        PyMem_Free(self->slots);
        self->slots = NULL;
    }
    self->qbytes_max = qbytes_max;
    self->flow_control = 1;
    if (!PyCallable_Check(on_blocked)) {
        PyErr_SetString(PyExc_TypeError, "on_blocked must be callable");
        return -1;
    }
    Py_XSETREF(self->on_blocked, Py_NewRef(on_blocked));
    self->qmax = qmax;
    PyObject *entries = PyObject_GetAttr(table, s_entries);
    if (entries == NULL)
        return -1;
    if (!PyDict_Check(entries)) {
        Py_DECREF(entries);
        PyErr_SetString(PyExc_TypeError, "table.entries must be a dict");
        return -1;
    }
    Py_XSETREF(self->table, Py_NewRef(table));
    Py_XSETREF(self->entries, entries);
    self->max_frame = max_frame;
    self->bufsize = max_frame + 1; /* one more byte, so oversize frames are seen as such */
    PyMem_Free(self->buf);
    self->buf = PyMem_Malloc(self->bufsize);
    self->nslots = nports + 1;
    self->slots = PyMem_Calloc(self->nslots, sizeof(PortSlot));
    if (self->buf == NULL || self->slots == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (int i = 0; i < self->nslots; i++)
        self->slots[i].fd = -1;
    return 0;
}

static int Forwarder_traverse(Forwarder *self, visitproc visit, void *arg) {
    Py_VISIT(self->table);
    Py_VISIT(self->entries);
    Py_VISIT(self->on_blocked);
    for (int i = 0; self->slots != NULL && i < self->nslots; i++) {
        Py_VISIT(self->slots[i].rec);
        Py_VISIT(self->slots[i].port);
        Py_VISIT(self->slots[i].input);
        Py_VISIT(self->slots[i].transmit);
    }
    return 0;
}

static int Forwarder_clear(Forwarder *self) {
    Py_CLEAR(self->table);
    Py_CLEAR(self->entries);
    Py_CLEAR(self->on_blocked);
    for (int i = 0; self->slots != NULL && i < self->nslots; i++)
        slot_clear(&self->slots[i], self->qmax);
    return 0;
}

static void Forwarder_dealloc(Forwarder *self) {
    PyObject_GC_UnTrack(self);
    Forwarder_clear(self);
    PyMem_Free(self->slots);
    PyMem_Free(self->buf);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int check_index(Forwarder *self, int index) {
    if (index < 0 || index >= self->nslots) {
        PyErr_Format(PyExc_IndexError, "port %d out of range 0..%d", index, self->nslots - 1);
        return -1;
    }
    return 0;
}

/* Forget a slot: frames still queued count as dropped on its port, then it is cleared. */
static int retire(Forwarder *self, PortSlot *s) {
    if (s->qcount) {
        s->tx_dropped += s->qcount;
        s->dirty = 1;
    }
    int rc = s->dirty ? flush_counters(self) : 0;
    slot_clear(s, self->qmax);
    return rc;
}

static PyObject *Forwarder_set_port(Forwarder *self, PyObject *args) {
    int index, fd;
    PyObject *rec, *port, *input, *transmit;
    if (!PyArg_ParseTuple(args, "iOOOOi", &index, &rec, &port, &input, &transmit, &fd))
        return NULL;
    if (check_index(self, index) < 0)
        return NULL;
    PortSlot *s = &self->slots[index];
    if (retire(self, s) < 0)
        return NULL;
    s->rec = Py_NewRef(rec);
    s->port = Py_NewRef(port);
    s->input = Py_NewRef(input);
    s->transmit = transmit == Py_None ? NULL : Py_NewRef(transmit);
    s->fd = transmit == Py_None ? -1 : fd;
    Py_RETURN_NONE;
}

static PyObject *Forwarder_clear_port(Forwarder *self, PyObject *args) {
    int index;
    if (!PyArg_ParseTuple(args, "i", &index))
        return NULL;
    if (check_index(self, index) < 0)
        return NULL;
    if (retire(self, &self->slots[index]) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* Send one frame out of port `s` (or queue it behind frames already waiting).
 * Returns 1 when the queue is past its high-water mark (3/4) and senders should be
 * paused, 0 otherwise, -1 with an exception set if the on_blocked callback failed. */
static int output(Forwarder *self, int index, const unsigned char *data, Py_ssize_t n) {
    PortSlot *s = &self->slots[index];
    if (s->qcount == 0) {
        for (;;) {
            if (send(s->fd, data, (size_t)n, MSG_DONTWAIT) >= 0)
                return 0;
            if (errno != EINTR)
                break;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            s->tx_dropped++; /* ECONNREFUSED: the client is gone; its ctl EOF follows */
            s->dirty = 1;
            return 0;
        }
    }
    unsigned char *copy = NULL;
    if (s->qcount < self->qmax && s->qbytes + n <= self->qbytes_max) {
        if (s->qdata == NULL) {
            s->qdata = PyMem_Calloc((size_t)self->qmax, sizeof(unsigned char *));
            s->qlen = PyMem_Calloc((size_t)self->qmax, sizeof(Py_ssize_t));
        }
        if (s->qdata != NULL && s->qlen != NULL)
            copy = PyMem_Malloc((size_t)n);
    }
    if (copy == NULL) { /* queue full (or no memory): a counted drop, as a full switch port */
        s->tx_dropped++;
        s->dirty = 1;
        self->queue_drops++;
        return 0;
    }
    int slot = (s->qhead + s->qcount) % self->qmax;
    memcpy(copy, data, (size_t)n);
    s->qdata[slot] = copy;
    s->qlen[slot] = n;
    s->qbytes += n;
    s->qcount++;
    self->queued++;
    if (!s->blocked) {
        s->blocked = 1;
        PyObject *r = PyObject_CallFunction(self->on_blocked, "ii", index, s->fd);
        if (r == NULL)
            return -1;
        Py_DECREF(r);
    }
    return self->flow_control && !s->lossy && (s->qcount * 4 >= self->qmax * 3 || s->qbytes * 4 >= self->qbytes_max * 3);
}

/* Look a 6-byte MAC up in the table; returns a borrowed [port, tick] list or NULL. */
static PyObject *lookup(Forwarder *self, const unsigned char *mac) {
    PyObject *key = PyBytes_FromStringAndSize((const char *)mac, 6);
    if (key == NULL)
        return NULL;
    PyObject *e = PyDict_GetItemWithError(self->entries, key);
    Py_DECREF(key);
    if (e != NULL && (!PyList_CheckExact(e) || PyList_GET_SIZE(e) < 2))
        return NULL;
    return e;
}

/* pump(index, fd, budget) -> (frames, errors, paused_on): drain up to `budget` frames from
 * `fd`, the data socket of switch port `index`. paused_on >= 0: a frame filled the output
 * queue of that port past its high-water mark; the caller stops reading `fd` until it drains. */
static PyObject *Forwarder_pump(Forwarder *self, PyObject *args) {
    int index, fd, budget;
    if (!PyArg_ParseTuple(args, "iii", &index, &fd, &budget))
        return NULL;
    if (check_index(self, index) < 0)
        return NULL;
    PortSlot *in = &self->slots[index];
    if (in->rec == NULL) {
        PyErr_Format(PyExc_ValueError, "port %d is not registered", index);
        return NULL;
    }
    unsigned char *buf = self->buf;
    const Py_ssize_t max_frame = self->max_frame;
    PyObject *tick = PyObject_GetAttr(self->table, s_tick);
    if (tick == NULL)
        return NULL;
    PyObject *my_index = PyLong_FromLong(index);
    if (my_index == NULL) {
        Py_DECREF(tick);
        return NULL;
    }
    /* Validity of ports is re-checked after any Python code ran (a slow-path frame). */
    int in_ok = -2;
    int out_idx = -1, out_ok = 0;
    unsigned char last_src[6], last_dst[6];
    int have_src = 0, have_dst = 0, last_dst_idx = -1;
    int frames = 0, errors = 0, paused_on = -1;
    PyObject *result = NULL;

    while (frames < budget) {
        ssize_t n = recv(fd, buf, (size_t)self->bufsize, MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                errors++; /* ECONNREFUSED after the client vanished; EOF comes on ctl */
            break;
        }
        frames++;
        if (in_ok == -2) {
            in_ok = slot_usable(in, 0);
            if (in_ok < 0)
                goto done;
        }
        if (in_ok && n >= 14 && n <= max_frame && !(buf[0] & 1) && !(buf[6] & 1) &&
            !(buf[12] == 0x81 && buf[13] == 0x00)) {
            /* source: must already be learned on this port; refresh its tick */
            if (!(have_src && memcmp(last_src, buf + 6, 6) == 0)) {
                PyObject *e = lookup(self, buf + 6);
                if (e == NULL) {
                    if (PyErr_Occurred())
                        goto done;
                    goto slow;
                }
                int same = PyObject_RichCompareBool(PyList_GET_ITEM(e, 0), my_index, Py_EQ);
                if (same < 0)
                    goto done;
                if (!same)
                    goto slow;
                Py_INCREF(tick);
                PyList_SetItem(e, 1, tick);
                memcpy(last_src, buf + 6, 6);
                have_src = 1;
            }
            /* destination: learned on another usable port */
            int j;
            if (have_dst && memcmp(last_dst, buf, 6) == 0) {
                j = last_dst_idx;
            } else {
                PyObject *e = lookup(self, buf);
                if (e == NULL) {
                    if (PyErr_Occurred())
                        goto done;
                    goto slow;
                }
                long v = PyLong_AsLong(PyList_GET_ITEM(e, 0));
                if (v == -1 && PyErr_Occurred())
                    goto done;
                j = (int)v;
                memcpy(last_dst, buf, 6);
                have_dst = 1;
                last_dst_idx = j;
            }
            if (j == index || j < 0 || j >= self->nslots)
                goto slow; /* filtered / odd: the engine counts it */
            if (j != out_idx) {
                out_ok = slot_usable(&self->slots[j], 1);
                if (out_ok < 0)
                    goto done;
                out_idx = j;
            }
            if (!out_ok)
                goto slow;
            PortSlot *out = &self->slots[j];
            in->rx_frames++;
            in->rx_bytes += n;
            in->dirty = 1;
            out->tx_frames++;
            out->tx_bytes += n;
            out->dirty = 1;
            self->fast_frames++;
            int congested = output(self, j, buf, n);
            if (congested < 0)
                goto done;
            if (congested) { /* stop reading this sender until port j drains (flow control) */
                paused_on = j;
                break;
            }
            continue;
        }
    slow:
        /* Hand the frame to the engine; whatever it does may change tables and ports. */
        self->slow_frames++;
        if (flush_counters(self) < 0)
            goto done;
        {
            PyObject *frame = PyBytes_FromStringAndSize((const char *)buf, n);
            if (frame == NULL)
                goto done;
            PyObject *recv_fn = PyObject_GetAttr(in->port, s_receive);
            if (recv_fn == NULL) {
                Py_DECREF(frame);
                goto done;
            }
            PyObject *r = PyObject_CallOneArg(recv_fn, frame);
            Py_DECREF(recv_fn);
            Py_DECREF(frame);
            if (r == NULL)
                goto done;
            Py_DECREF(r);
        }
        if (in->rec == NULL) /* the engine unregistered this port meanwhile */
            break;
        Py_SETREF(tick, PyObject_GetAttr(self->table, s_tick));
        if (tick == NULL)
            goto done;
        in_ok = -2;
        out_idx = -1;
        have_src = have_dst = 0;
    }
    result = Py_BuildValue("iii", frames, errors, paused_on);
done:
    Py_XDECREF(tick);
    Py_DECREF(my_index);
    if (flush_counters(self) < 0)
        Py_CLEAR(result);
    return result;
}

/* transmit(index, frame): the port's transmit for frames the Python engine sends, so they
 * keep their order with frames queued by the fast path. */
static PyObject *Forwarder_transmit(Forwarder *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "transmit(index, frame)");
        return NULL;
    }
    int index = PyLong_AsLong(args[0]);
    if (index == -1 && PyErr_Occurred())
        return NULL;
    if (check_index(self, index) < 0)
        return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(args[1], &view, PyBUF_SIMPLE) < 0)
        return NULL;
    PortSlot *s = &self->slots[index];
    int rc = 0;
    if (s->fd >= 0) {
        rc = output(self, index, view.buf, view.len);
        if (s->dirty && flush_counters(self) < 0)
            rc = -1;
    }
    PyBuffer_Release(&view);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* drain(index) -> int: send queued frames while the peer has room; returns how many are
 * still queued (0: the caller stops waiting for writability). */
static PyObject *Forwarder_drain(Forwarder *self, PyObject *args) {
    int index;
    if (!PyArg_ParseTuple(args, "i", &index))
        return NULL;
    if (check_index(self, index) < 0)
        return NULL;
    PortSlot *s = &self->slots[index];
    while (s->qcount > 0) { /* fd -1 (port retired): EBADF, counted as drops */
        unsigned char *data = s->qdata[s->qhead];
        Py_ssize_t n = s->qlen[s->qhead];
        if (send(s->fd, data, (size_t)n, MSG_DONTWAIT) < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                if (s->dirty && flush_counters(self) < 0)
                    return NULL;
                return PyLong_FromLong(s->qcount);
            }
            s->tx_dropped++; /* the peer is gone */
            s->dirty = 1;
        }
        PyMem_Free(data);
        s->qdata[s->qhead] = NULL;
        s->qbytes -= n;
        s->qhead = (s->qhead + 1) % self->qmax;
        s->qcount--;
    }
    s->qhead = s->qcount = 0;
    s->qbytes = 0;
    s->blocked = 0;
    s->lossy = 0;
    if (s->dirty && flush_counters(self) < 0)
        return NULL;
    return PyLong_FromLong(0);
}

/* set_lossy(index): the port's client has not drained in time; stop pausing senders for it
 * (frames beyond its queue are dropped) until its queue empties. */
static PyObject *Forwarder_set_lossy(Forwarder *self, PyObject *args) {
    int index;
    if (!PyArg_ParseTuple(args, "i", &index))
        return NULL;
    if (check_index(self, index) < 0)
        return NULL;
    if (self->slots[index].qcount > 0)
        self->slots[index].lossy = 1;
    Py_RETURN_NONE;
}

static PyObject *Forwarder_stats(Forwarder *self, PyObject *Py_UNUSED(ignored)) {
    return Py_BuildValue("{sKsKsKsK}", "fast_frames", self->fast_frames, "slow_frames",
                         self->slow_frames, "queued", self->queued, "queue_drops",
                         self->queue_drops);
}

static PyMethodDef Forwarder_methods[] = {
    {"set_port", (PyCFunction)Forwarder_set_port, METH_VARARGS,
     "set_port(index, rec, port, input, transmit, fd): register a switch port; transmit=None "
     "when the port cannot be an egress fast path (several endpoints)"},
    {"clear_port", (PyCFunction)Forwarder_clear_port, METH_VARARGS,
     "clear_port(index): forget a port"},
    {"pump", (PyCFunction)Forwarder_pump, METH_VARARGS,
     "pump(index, fd, budget) -> (frames, errors, paused_on): drain a data socket"},
    {"transmit", (PyCFunction)(void (*)(void))Forwarder_transmit, METH_FASTCALL,
     "transmit(index, frame): send out of a registered port, behind any queued frames"},
    {"drain", (PyCFunction)Forwarder_drain, METH_VARARGS,
     "drain(index) -> int: flush the port's output queue; frames left"},
    {"set_lossy", (PyCFunction)Forwarder_set_lossy, METH_VARARGS,
     "set_lossy(index): drop rather than pause senders until the port's queue drains"},
    {"stats", (PyCFunction)Forwarder_stats, METH_NOARGS, "frames taken fast / slow"},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef Forwarder_members[] = {
    {"flow_control", T_BOOL, offsetof(Forwarder, flow_control), 0,
     "pause senders while a port's output queue is past its high-water mark"},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject ForwarderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "vnet.phy._vdefast.Forwarder",
    .tp_basicsize = sizeof(Forwarder),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Known-unicast forwarding between VDE data sockets, in C.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Forwarder_init,
    .tp_dealloc = (destructor)Forwarder_dealloc,
    .tp_traverse = (traverseproc)Forwarder_traverse,
    .tp_clear = (inquiry)Forwarder_clear,
    .tp_methods = Forwarder_methods,
    .tp_members = Forwarder_members,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_vdefast", "Compiled fast path for VDE datagram ports.", -1, NULL,
};

PyMODINIT_FUNC PyInit__vdefast(void) {
#define INTERN(var, s) if ((var = PyUnicode_InternFromString(s)) == NULL) return NULL
    INTERN(s_fast, "fast");
    INTERN(s_transmit, "transmit");
    INTERN(s_receive, "receive");
    INTERN(s_tick, "tick");
    INTERN(s_entries, "entries");
    INTERN(s_rx_frames, "rx_frames");
    INTERN(s_rx_bytes, "rx_bytes");
    INTERN(s_tx_frames, "tx_frames");
    INTERN(s_tx_bytes, "tx_bytes");
    INTERN(s_tx_dropped, "tx_dropped");
#undef INTERN
    if (PyType_Ready(&ForwarderType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "Forwarder", (PyObject *)&ForwarderType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
