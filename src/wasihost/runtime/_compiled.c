/* Compiled call plans: the typed call path's conversions and callback
 * dispatch in C (wasihost.runtime._compiled, driven by compiled.py).
 *
 * Why C: after the Python plans (plans.py, values.py) a dht22 poll still
 * spent ~40 % of its time in small Python frames converting values and
 * dispatching callbacks; this module does the same work without them. It is
 * optional: when it is not built the host uses the Python plans.
 *
 * It knows nothing about wasmtime's headers or library: compiled.py hands
 * it the addresses of the C functions it needs and the layout wasmtime-py
 * declares, and setup() refuses to run if that layout is not the one below.
 * The Python forms of values are exactly those of values.py; the test suite
 * runs every kind of value through both (tests/runtime/test_values.py).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* ---- wasmtime's C representation of component values (component/val.h) ---- */

enum {
    K_BOOL, K_S8, K_U8, K_S16, K_U16, K_S32, K_U32, K_S64, K_U64, K_F32, K_F64,
    K_CHAR, K_STRING, K_LIST, K_RECORD, K_TUPLE, K_VARIANT, K_ENUM, K_OPTION, K_RESULT,
    K_LIST_U8 = 100, /* ours: list<u8>, converted to and from bytes */
};

typedef struct val val_t;
typedef struct entry entry_t;

struct val {
    uint8_t kind;
    union {
        bool boolean;
        int8_t s8;
        uint8_t u8;
        int16_t s16;
        uint16_t u16;
        int32_t s32;
        uint32_t u32;
        int64_t s64;
        uint64_t u64;
        float f32;
        double f64;
        uint32_t character;
        struct { size_t size; char *data; } text;   /* string, enum */
        struct { size_t size; val_t *data; } list;  /* list, tuple */
        struct { size_t size; entry_t *data; } record;
        struct { bool is_ok; val_t *val; } result;
        val_t *option;
        struct { size_t size; char *data; val_t *val; } variant;
    } of;
};

struct entry {
    size_t name_size;
    const char *name;
    val_t val;
};

typedef void *(*func_call_fn)(void *func, void *context, const val_t *args, size_t nargs,
                              val_t *results, size_t nresults);
typedef void *(*error_new_fn)(const char *message);
typedef void (*val_clone_fn)(const val_t *src, val_t *dst);
typedef void (*val_delete_fn)(val_t *val);
typedef void (*epoch_deadline_fn)(void *context, uint64_t ticks);
typedef void *(*callback_fn)(void *env, void *context, void *type, const val_t *args,
                             size_t nargs, val_t *results, size_t nresults);
typedef void *(*add_func_fn)(void *instance, const char *name, size_t len, callback_fn cb,
                             void *env, void (*finalizer)(void *));

static func_call_fn func_call;
static error_new_fn error_new;
static val_clone_fn val_clone;
static val_delete_fn val_delete;
static epoch_deadline_fn set_epoch_deadline;
static add_func_fn add_func;
static PyObject *LayoutError, *WasihostError;
static PyObject *ArgumentErrors; /* what a bad export argument raises (calls.ARGUMENT_ERRORS) */
static PyObject *StringOverCap;  /* values.StringOverCap(size, cap) */
static PyObject *Shortened;      /* values.shortened(head, total, cap) -> str */

/* The exception being raised, normalised, with its traceback; clears it. */
static PyObject *fetch(void) {
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    PyErr_NormalizeException(&type, &value, &traceback);
    if (value != NULL && traceback != NULL) PyException_SetTraceback(value, traceback);
    Py_XDECREF(type);
    Py_XDECREF(traceback);
    return value;
}

/* ---- types, as compiled.py describes them ---------------------------------- */

typedef struct desc desc_t;
struct desc {
    int code;              /* a kind above */
    Py_ssize_t count;      /* record fields, tuple elements, enum names */
    desc_t **items;        /* field, element or payload types */
    PyObject **keys;       /* record: Python keys; enum: case names */
    const char **names;    /* record: WIT field names (UTF-8, in `owner`) */
    Py_ssize_t *sizes;
    PyObject *fallback;    /* record: values_of(value); option, result: accepts(value) */
    PyObject *fallback2;   /* result: accepts(value) for the err case */
    PyObject *owner;       /* keeps the UTF-8 of `names` alive */
    Py_ssize_t cap;        /* string: at most this many characters (0: no cap) */
    bool cut;              /* string: cut to `cap` rather than refused */
};

static void desc_free(desc_t *d) {
    if (d == NULL) return;
    for (Py_ssize_t i = 0; i < d->count; i++) {
        if (d->items) desc_free(d->items[i]);
        if (d->keys) Py_XDECREF(d->keys[i]);
    }
    if (d->code == K_OPTION || d->code == K_LIST) desc_free(d->items ? d->items[0] : NULL);
    PyMem_Free(d->items);
    PyMem_Free(d->keys);
    PyMem_Free(d->names);
    PyMem_Free(d->sizes);
    Py_XDECREF(d->fallback);
    Py_XDECREF(d->fallback2);
    Py_XDECREF(d->owner);
    PyMem_Free(d);
}

/* (code,) | (STRING, cap, cut) | (ENUM, names) | (LIST, item) | (TUPLE, items)
 * | (OPTION, payload, accepts)
 * | (RECORD, keys, wit_names, items, values_of)
 * | (RESULT, ok or None, err or None, accepts_ok, accepts_err): results and options as
 *   values are untagged (values.py); compiled.py refuses the tagged ones. */
static desc_t *desc_new(PyObject *spec) {
    desc_t *d = PyMem_Calloc(1, sizeof(desc_t));
    if (d == NULL) return (desc_t *)PyErr_NoMemory();
    if (!PyTuple_Check(spec) || PyTuple_GET_SIZE(spec) < 1) goto bad;
    d->code = (int)PyLong_AsLong(PyTuple_GET_ITEM(spec, 0));
    if (d->code == -1 && PyErr_Occurred()) goto fail;
    Py_ssize_t n = PyTuple_GET_SIZE(spec);
    switch (d->code) {
    case K_BOOL: case K_S8: case K_U8: case K_S16: case K_U16: case K_S32: case K_U32:
    case K_S64: case K_U64: case K_F32: case K_F64: case K_CHAR: case K_LIST_U8:
        return d;
    case K_STRING:
        if (n == 3) {
            d->cap = PyLong_AsSsize_t(PyTuple_GET_ITEM(spec, 1));
            if (d->cap == -1 && PyErr_Occurred()) goto fail;
            d->cut = PyObject_IsTrue(PyTuple_GET_ITEM(spec, 2)) == 1;
        } else if (n != 1) {
            goto bad;
        }
        return d;
    case K_ENUM: {
        PyObject *names = n == 2 ? PyTuple_GET_ITEM(spec, 1) : NULL;
        if (names == NULL || !PyTuple_Check(names)) goto bad;
        d->count = PyTuple_GET_SIZE(names);
        d->keys = PyMem_Calloc(d->count ? d->count : 1, sizeof(PyObject *));
        if (d->keys == NULL) goto nomem;
        for (Py_ssize_t i = 0; i < d->count; i++) {
            d->keys[i] = Py_NewRef(PyTuple_GET_ITEM(names, i));
            if (!PyUnicode_Check(d->keys[i])) goto bad;
        }
        return d;
    }
    case K_LIST: case K_OPTION: {
        if (n != (d->code == K_LIST ? 2 : 3)) goto bad;
        d->items = PyMem_Calloc(1, sizeof(desc_t *));
        if (d->items == NULL) goto nomem;
        if (d->code == K_OPTION) d->fallback = Py_NewRef(PyTuple_GET_ITEM(spec, 2));
        d->items[0] = desc_new(PyTuple_GET_ITEM(spec, 1));
        if (d->items[0] == NULL) goto fail;
        return d;
    }
    case K_RESULT: {
        if (n != 5) goto bad;
        d->count = 2;
        d->items = PyMem_Calloc(2, sizeof(desc_t *));
        if (d->items == NULL) goto nomem;
        d->fallback = Py_NewRef(PyTuple_GET_ITEM(spec, 3));
        d->fallback2 = Py_NewRef(PyTuple_GET_ITEM(spec, 4));
        for (int i = 0; i < 2; i++) {
            PyObject *item = PyTuple_GET_ITEM(spec, 1 + i);
            if (item != Py_None && (d->items[i] = desc_new(item)) == NULL) goto fail;
        }
        return d;
    }
    case K_TUPLE: case K_RECORD: {
        bool record = d->code == K_RECORD;
        if (n != (record ? 5 : 2)) goto bad;
        PyObject *items = PyTuple_GET_ITEM(spec, record ? 3 : 1);
        if (!PyTuple_Check(items)) goto bad;
        Py_ssize_t count = PyTuple_GET_SIZE(items);
        d->items = PyMem_Calloc(count ? count : 1, sizeof(desc_t *));
        if (d->items == NULL) goto nomem;
        d->count = count;
        if (record) {
            PyObject *keys = PyTuple_GET_ITEM(spec, 1), *names = PyTuple_GET_ITEM(spec, 2);
            if (!PyTuple_Check(keys) || !PyTuple_Check(names) || PyTuple_GET_SIZE(keys) != count
                || PyTuple_GET_SIZE(names) != count)
                goto bad;
            d->keys = PyMem_Calloc(count ? count : 1, sizeof(PyObject *));
            d->names = PyMem_Calloc(count ? count : 1, sizeof(char *));
            d->sizes = PyMem_Calloc(count ? count : 1, sizeof(Py_ssize_t));
            if (d->keys == NULL || d->names == NULL || d->sizes == NULL) goto nomem;
            d->owner = Py_NewRef(names);
            d->fallback = Py_NewRef(PyTuple_GET_ITEM(spec, 4));
            for (Py_ssize_t i = 0; i < count; i++) {
                d->keys[i] = Py_NewRef(PyTuple_GET_ITEM(keys, i));
                d->names[i] = PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(names, i), &d->sizes[i]);
                if (d->names[i] == NULL) goto fail;
            }
        }
        for (Py_ssize_t i = 0; i < count; i++) {
            d->items[i] = desc_new(PyTuple_GET_ITEM(items, i));
            if (d->items[i] == NULL) goto fail;
        }
        return d;
    }
    }
bad:
    PyErr_Format(PyExc_ValueError, "bad type description %R", spec);
    goto fail;
nomem:
    PyErr_NoMemory();
fail:
    desc_free(d);
    return NULL;
}

/* ---- the arena: where values we hand to wasmtime are composed ----------------
 * Pointers into it must stay valid while one value is composed, so it never
 * moves: a value that does not fit is composed again in a bigger one. */

#define ARENA_MAX (64 * 1024 * 1024)
#define FULL (-2)

typedef struct {
    char *base;
    size_t size, top;
} arena_t;

static void *take(arena_t *a, size_t size) {
    size_t top = a->top + ((size + 7) & ~(size_t)7);
    if (top > a->size) return NULL;
    void *at = a->base + a->top;
    a->top = top;
    return at;
}

static int grow(arena_t *a) {
    size_t size = a->size ? a->size * 4 : 1024;
    if (size > ARENA_MAX) {
        PyErr_Format(PyExc_ValueError, "value larger than %d MB", ARENA_MAX / (1024 * 1024));
        return -1;
    }
    char *base = PyMem_Malloc(size);
    if (base == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    PyMem_Free(a->base);
    a->base = base;
    a->size = size;
    a->top = 0;
    return 0;
}

/* ---- lowering: Python -> C (0, -1 with an exception, or FULL) ------------------ */

static int lower(desc_t *d, PyObject *value, val_t *slot, arena_t *a);

static int wrong_type(const char *expected, PyObject *value) {
    PyErr_Format(PyExc_TypeError, "expected %s, got %s", expected, Py_TYPE(value)->tp_name);
    return -1;
}

static int out_of_range(PyObject *value) {
    PyErr_Format(PyExc_ValueError, "%R out of range", value);
    return -1;
}

static int lower_int(int code, PyObject *value, val_t *slot) {
    static const long long lo[] = {[K_S8] = INT8_MIN, [K_U8] = 0, [K_S16] = INT16_MIN,
                                   [K_U16] = 0, [K_S32] = INT32_MIN, [K_U32] = 0,
                                   [K_S64] = INT64_MIN};
    static const long long hi[] = {[K_S8] = INT8_MAX, [K_U8] = UINT8_MAX, [K_S16] = INT16_MAX,
                                   [K_U16] = UINT16_MAX, [K_S32] = INT32_MAX,
                                   [K_U32] = UINT32_MAX, [K_S64] = INT64_MAX};
    if (!PyLong_Check(value)) return wrong_type("int", value);
    if (code == K_U64) {
        unsigned long long u = PyLong_AsUnsignedLongLong(value);
        if (u == (unsigned long long)-1 && PyErr_Occurred()) {
            PyErr_Clear();
            return out_of_range(value);
        }
        slot->of.u64 = u;
        return 0;
    }
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (v == -1 && PyErr_Occurred()) return -1;
    if (overflow || v < lo[code] || v > hi[code]) return out_of_range(value);
    switch (code) {
    case K_S8: slot->of.s8 = (int8_t)v; break;
    case K_U8: slot->of.u8 = (uint8_t)v; break;
    case K_S16: slot->of.s16 = (int16_t)v; break;
    case K_U16: slot->of.u16 = (uint16_t)v; break;
    case K_S32: slot->of.s32 = (int32_t)v; break;
    case K_U32: slot->of.u32 = (uint32_t)v; break;
    default: slot->of.s64 = v;
    }
    return 0;
}

static int lower_text(desc_t *d, PyObject *value, val_t *slot, arena_t *a) {
    if (!PyUnicode_Check(value)) return wrong_type("str", value);
    if (d->code == K_ENUM) {
        Py_ssize_t i = 0;
        for (; i < d->count; i++) {
            int same = PyUnicode_Compare(value, d->keys[i]);
            if (same == -1 && PyErr_Occurred()) return -1;
            if (same == 0) break;
        }
        if (i == d->count) {
            PyErr_Format(PyExc_ValueError, "%R is not a case of this enum", value);
            return -1;
        }
    }
    Py_ssize_t size;
    const char *utf8 = PyUnicode_AsUTF8AndSize(value, &size);
    if (utf8 == NULL) return -1;
    char *text = take(a, (size_t)size);
    if (text == NULL) return FULL;
    memcpy(text, utf8, (size_t)size);
    slot->kind = (uint8_t)d->code;
    slot->of.text.size = (size_t)size;
    slot->of.text.data = text;
    return 0;
}

static int lower_bytes(PyObject *value, val_t *slot, arena_t *a) {
    if (!PyBytes_Check(value) && !PyByteArray_Check(value) && !PyMemoryView_Check(value))
        return wrong_type("bytes", value);
    Py_buffer view; /* any 1-D view of unsigned bytes, strided or not, as values.py takes */
    if (PyObject_GetBuffer(value, &view, PyBUF_RECORDS_RO) < 0) return -1;
    int status = 0;
    if (view.ndim != 1 || view.itemsize != 1 || view.format == NULL
        || strcmp(view.format, "B") != 0) {
        PyErr_SetString(PyExc_ValueError, "expected bytes, got a view of other items");
        status = -1;
    } else {
        size_t size = (size_t)view.shape[0];
        val_t *items = take(a, size * sizeof(val_t));
        if (items == NULL) {
            status = FULL;
        } else {
            const char *data = view.buf;
            for (size_t i = 0; i < size; i++) {
                items[i].kind = K_U8;
                items[i].of.u8 = (uint8_t)data[(Py_ssize_t)i * view.strides[0]];
            }
            slot->kind = K_LIST;
            slot->of.list.size = size;
            slot->of.list.data = items;
        }
    }
    PyBuffer_Release(&view);
    return status;
}

static int lower_items(desc_t *const *types, bool same, PyObject *seq, Py_ssize_t size,
                       val_t **out, arena_t *a) {
    val_t *items = take(a, (size_t)size * sizeof(val_t));
    if (items == NULL) return FULL;
    for (Py_ssize_t i = 0; i < size; i++) {
        if (i >= PySequence_Fast_GET_SIZE(seq)) { /* Python code run by lowering changed it */
            PyErr_SetString(PyExc_RuntimeError, "list changed size while being passed");
            return -1;
        }
        PyObject *value = Py_NewRef(PySequence_Fast_GET_ITEM(seq, i));
        int status = lower(types[same ? 0 : i], value, &items[i], a);
        Py_DECREF(value);
        if (status) return status;
    }
    *out = items;
    return 0;
}

static int lower_record(desc_t *d, PyObject *value, val_t *slot, arena_t *a) {
    PyObject *fields = NULL; /* for anything but a dict: values_of(value), a list */
    if (!PyDict_CheckExact(value)) {
        fields = PyObject_CallOneArg(d->fallback, value);
        if (fields == NULL) return -1;
        if (!PyList_CheckExact(fields) || PyList_GET_SIZE(fields) != d->count) {
            Py_DECREF(fields);
            PyErr_SetString(PyExc_TypeError, "record fields do not match the type");
            return -1;
        }
    }
    int status = 0;
    entry_t *entries = take(a, (size_t)d->count * sizeof(entry_t));
    if (entries == NULL) status = FULL;
    for (Py_ssize_t i = 0; status == 0 && i < d->count; i++) {
        PyObject *field;
        if (fields != NULL) {
            field = PyList_GET_ITEM(fields, i);
        } else {
            field = PyDict_GetItemWithError(value, d->keys[i]);
            if (field == NULL) {
                if (!PyErr_Occurred()) PyErr_SetObject(PyExc_KeyError, d->keys[i]);
                status = -1;
                break;
            }
        }
        entries[i].name_size = (size_t)d->sizes[i];
        entries[i].name = d->names[i];
        Py_INCREF(field); /* a dict's value may go while lowering calls Python */
        status = lower(d->items[i], field, &entries[i].val, a);
        Py_DECREF(field);
    }
    Py_XDECREF(fields);
    if (status == 0) {
        slot->kind = K_RECORD;
        slot->of.record.size = (size_t)d->count;
        slot->of.record.data = entries;
    }
    return status;
}

/* Whether `value` belongs to a case: accepts(value), as values.py decides it. */
static int accepted(PyObject *accepts, PyObject *value) {
    PyObject *answer = PyObject_CallOneArg(accepts, value);
    int yes = answer == NULL ? -1 : PyObject_IsTrue(answer);
    Py_XDECREF(answer);
    return yes;
}

static int no_case(PyObject *value) {
    PyErr_Format(PyExc_TypeError, "%s value fits no case of this type", Py_TYPE(value)->tp_name);
    return -1;
}

/* A case's payload in its own slot (NULL for a case without one). */
static int box(desc_t *payload, PyObject *value, val_t **out, arena_t *a) {
    *out = NULL;
    if (payload == NULL) return 0;
    val_t *slot = take(a, sizeof(val_t));
    if (slot == NULL) return FULL;
    *out = slot;
    return lower(payload, value, slot, a);
}

static int lower(desc_t *d, PyObject *value, val_t *slot, arena_t *a) {
    switch (d->code) {
    case K_BOOL:
        if (!PyBool_Check(value)) return wrong_type("bool", value);
        slot->of.boolean = value == Py_True;
        break;
    case K_S8: case K_U8: case K_S16: case K_U16: case K_S32: case K_U32: case K_S64:
    case K_U64:
        if (lower_int(d->code, value, slot) < 0) return -1;
        break;
    case K_F32: case K_F64:
        if (!PyFloat_Check(value)) return wrong_type("float", value);
        if (d->code == K_F32)
            slot->of.f32 = (float)PyFloat_AS_DOUBLE(value); /* beyond range: ±inf, as in C */
        else
            slot->of.f64 = PyFloat_AS_DOUBLE(value);
        break;
    case K_CHAR: {
        if (!PyUnicode_Check(value) || PyUnicode_GET_LENGTH(value) != 1)
            return wrong_type("a one-character string", value);
        Py_UCS4 code = PyUnicode_READ_CHAR(value, 0);
        if (code >= 0xD800 && code <= 0xDFFF) {
            PyErr_SetString(PyExc_ValueError, "a surrogate is not a Unicode scalar value");
            return -1;
        }
        slot->of.character = code;
        break;
    }
    case K_STRING: case K_ENUM:
        return lower_text(d, value, slot, a);
    case K_LIST_U8:
        return lower_bytes(value, slot, a);
    case K_LIST: case K_TUPLE: {
        if (!PyList_Check(value) && !PyTuple_Check(value))
            return wrong_type(d->code == K_LIST ? "list" : "tuple", value);
        Py_ssize_t size = PySequence_Fast_GET_SIZE(value);
        if (d->code == K_TUPLE && size != d->count) {
            PyErr_Format(PyExc_TypeError, "expected a tuple of %zd", d->count);
            return -1;
        }
        val_t *items;
        int status = lower_items(d->items, d->code == K_LIST, value, size, &items, a);
        if (status) return status;
        slot->kind = (uint8_t)d->code;
        slot->of.list.size = (size_t)size;
        slot->of.list.data = items;
        return 0;
    }
    case K_RECORD:
        return lower_record(d, value, slot, a);
    case K_OPTION: {
        val_t *payload = NULL;
        if (value != Py_None) {
            int fits = accepted(d->fallback, value);
            if (fits <= 0) return fits < 0 ? -1 : no_case(value);
            int status = box(d->items[0], value, &payload, a);
            if (status) return status;
        }
        slot->kind = K_OPTION;
        slot->of.option = payload;
        return 0;
    }
    case K_RESULT: {
        int ok = accepted(d->fallback, value), err = 0;
        if (ok < 0) return -1;
        if (!ok) {
            err = accepted(d->fallback2, value);
            if (err <= 0) return err < 0 ? -1 : no_case(value);
        }
        val_t *payload;
        int status = box(d->items[ok ? 0 : 1], value, &payload, a);
        if (status) return status;
        slot->kind = K_RESULT;
        slot->of.result.is_ok = ok;
        slot->of.result.val = payload;
        return 0;
    }
    default:
        PyErr_Format(PyExc_SystemError, "no lowering for kind %d", d->code);
        return -1;
    }
    slot->kind = (uint8_t)d->code;
    return 0;
}

/* ---- lifting: C -> Python (a new reference, or NULL with LayoutError) ---------- */

static PyObject *layout(const char *what, int expected, int found) {
    PyErr_Format(LayoutError, "%s: expected value kind %d, found %d", what, expected, found);
    return NULL;
}

static PyObject *text(const val_t *v) {
    if (v->of.text.size == 0) return PyUnicode_FromStringAndSize(NULL, 0);
    return PyUnicode_DecodeUTF8(v->of.text.data, (Py_ssize_t)v->of.text.size, NULL);
}

/* A string over its cap: refused from its length (more bytes than 4 per character
 * allowed, never decoded) or after counting its characters; or, for `cut`, its head
 * decoded (at most 4 * cap bytes) and shortened with a note, as values.py does. */
static PyObject *capped_text(desc_t *d, const val_t *v) {
    size_t size = v->of.text.size, limit = (size_t)d->cap * 4;
    const unsigned char *data = (const unsigned char *)v->of.text.data;
    if (d->cap == 0 || size <= (size_t)d->cap) return text(v);
    if (size > limit && !d->cut)
        goto refuse;
    size_t chars = 0;
    for (size_t i = 0; i < size; i++) chars += (data[i] & 0xC0) != 0x80;
    if (chars <= (size_t)d->cap) return text(v);
    if (!d->cut) goto refuse;
    size_t end = size < limit ? size : limit;
    while (end < size && (data[end] & 0xC0) == 0x80) end--;
    PyObject *head = PyUnicode_DecodeUTF8((const char *)data, (Py_ssize_t)end, NULL);
    if (head == NULL) return NULL;
    return PyObject_CallFunction(Shortened, "Nnn", head, (Py_ssize_t)chars, d->cap);
refuse: {
        PyObject *exc = PyObject_CallFunction(StringOverCap, "nn", (Py_ssize_t)size, d->cap);
        if (exc != NULL) {
            PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
            Py_DECREF(exc);
        }
        return NULL;
    }
}

static PyObject *lift(desc_t *d, const val_t *v) {
    int kind = d->code == K_LIST_U8 ? K_LIST : d->code;
    if (v->kind != kind) return layout("value", kind, v->kind);
    switch (d->code) {
    case K_BOOL: return PyBool_FromLong(v->of.boolean);
    case K_S8: return PyLong_FromLong(v->of.s8);
    case K_U8: return PyLong_FromLong(v->of.u8);
    case K_S16: return PyLong_FromLong(v->of.s16);
    case K_U16: return PyLong_FromLong(v->of.u16);
    case K_S32: return PyLong_FromLong(v->of.s32);
    case K_U32: return PyLong_FromUnsignedLong(v->of.u32);
    case K_S64: return PyLong_FromLongLong(v->of.s64);
    case K_U64: return PyLong_FromUnsignedLongLong(v->of.u64);
    case K_F32: return PyFloat_FromDouble((double)v->of.f32);
    case K_F64: return PyFloat_FromDouble(v->of.f64);
    case K_CHAR: return PyUnicode_FromOrdinal((int)v->of.character);
    case K_STRING: return d->cap ? capped_text(d, v) : text(v);
    case K_ENUM: return text(v);
    case K_LIST_U8: {
        size_t size = v->of.list.size;
        PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)size);
        if (out == NULL) return NULL;
        char *bytes = PyBytes_AS_STRING(out);
        for (size_t i = 0; i < size; i++) {
            if (v->of.list.data[i].kind != K_U8) {
                Py_DECREF(out);
                return layout("list<u8> element", K_U8, v->of.list.data[i].kind);
            }
            bytes[i] = (char)v->of.list.data[i].of.u8;
        }
        return out;
    }
    case K_LIST: case K_TUPLE: {
        Py_ssize_t size = (Py_ssize_t)v->of.list.size;
        bool list = d->code == K_LIST;
        if (!list && size != d->count) {
            PyErr_Format(LayoutError, "tuple of %zd, expected %zd", size, d->count);
            return NULL;
        }
        PyObject *out = list ? PyList_New(size) : PyTuple_New(size);
        if (out == NULL) return NULL;
        for (Py_ssize_t i = 0; i < size; i++) {
            PyObject *item = lift(d->items[list ? 0 : i], &v->of.list.data[i]);
            if (item == NULL) {
                Py_DECREF(out);
                return NULL;
            }
            if (list)
                PyList_SET_ITEM(out, i, item);
            else
                PyTuple_SET_ITEM(out, i, item);
        }
        return out;
    }
    case K_RECORD: {
        if ((Py_ssize_t)v->of.record.size != d->count) {
            PyErr_Format(LayoutError, "record with %zu fields, expected %zd", v->of.record.size,
                         d->count);
            return NULL;
        }
        PyObject *out = PyDict_New();
        if (out == NULL) return NULL;
        for (Py_ssize_t i = 0; i < d->count; i++) {
            PyObject *item = lift(d->items[i], &v->of.record.data[i].val);
            if (item == NULL || PyDict_SetItem(out, d->keys[i], item) < 0) {
                Py_XDECREF(item);
                Py_DECREF(out);
                return NULL;
            }
            Py_DECREF(item);
        }
        return out;
    }
    case K_OPTION:
        if (v->of.option == NULL) Py_RETURN_NONE;
        return lift(d->items[0], v->of.option);
    case K_RESULT: {
        desc_t *payload = d->items[v->of.result.is_ok ? 0 : 1];
        if (payload == NULL) Py_RETURN_NONE;
        if (v->of.result.val == NULL) {
            PyErr_SetString(LayoutError, "result case without its payload");
            return NULL;
        }
        return lift(payload, v->of.result.val);
    }
    }
    PyErr_Format(PyExc_SystemError, "no lifting for kind %d", d->code);
    return NULL;
}

/* ---- a function's signature ------------------------------------------------------ */

typedef struct {
    Py_ssize_t count;
    desc_t **params;
    int returns;       /* 0: nothing, 1: a value, 2: a result split into ok / err */
    desc_t *value;     /* returns == 1 */
    desc_t *ok, *err;  /* returns == 2; NULL for a case without payload */
} signature_t;

static void signature_free(signature_t *s) {
    for (Py_ssize_t i = 0; i < s->count; i++) desc_free(s->params[i]);
    PyMem_Free(s->params);
    desc_free(s->value);
    desc_free(s->ok);
    desc_free(s->err);
    memset(s, 0, sizeof(*s));
}

static desc_t *optional_desc(PyObject *spec, bool *failed) {
    if (spec == Py_None) return NULL;
    desc_t *d = desc_new(spec);
    if (d == NULL) *failed = true;
    return d;
}

/* params: a tuple of descriptions; result: None, ("value", d) or ("result", ok, err) */
static int signature_init(signature_t *s, PyObject *params, PyObject *result) {
    memset(s, 0, sizeof(*s));
    if (!PyTuple_Check(params)) {
        PyErr_SetString(PyExc_TypeError, "params must be a tuple");
        return -1;
    }
    s->params = PyMem_Calloc((size_t)PyTuple_GET_SIZE(params) + 1, sizeof(desc_t *));
    if (s->params == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(params); i++) {
        s->params[i] = desc_new(PyTuple_GET_ITEM(params, i));
        if (s->params[i] == NULL) goto fail;
        s->count = i + 1;
    }
    if (result == Py_None) return 0;
    if (!PyTuple_Check(result) || PyTuple_GET_SIZE(result) < 2) goto bad;
    bool failed = false;
    if (PyTuple_GET_SIZE(result) == 2) {
        s->returns = 1;
        s->value = optional_desc(PyTuple_GET_ITEM(result, 1), &failed);
        if (s->value == NULL && !failed) goto bad;
    } else {
        s->returns = 2;
        s->ok = optional_desc(PyTuple_GET_ITEM(result, 1), &failed);
        s->err = optional_desc(PyTuple_GET_ITEM(result, 2), &failed);
    }
    if (!failed) return 0;
    goto fail;
bad:
    PyErr_Format(PyExc_ValueError, "bad result description %R", result);
fail:
    signature_free(s);
    return -1;
}

/* Compose a result (value, or ok/err) in `a`'s first slot; retried in a bigger
 * arena when it does not fit. */
static int compose_result(signature_t *s, arena_t *a, int ok, PyObject *value) {
    for (;;) {
        a->top = 0;
        val_t *slot = take(a, sizeof(val_t));
        int status = FULL;
        if (slot != NULL) {
            memset(slot, 0, sizeof(val_t));
            if (s->returns == 1) {
                status = lower(s->value, value, slot, a);
            } else {
                val_t *payload;
                status = box(ok ? s->ok : s->err, value, &payload, a);
                slot->kind = K_RESULT;
                slot->of.result.is_ok = ok;
                slot->of.result.val = payload;
            }
        }
        if (status != FULL) return status;
        if (grow(a) < 0) return -1;
    }
}

/* ---- capability callbacks ----------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    signature_t sig;
    PyObject *impl;    /* the capability implementation */
    PyObject *hooks;   /* failed(exc), internal(exc), bad_value(exc) -> str (they log) */
} Capability;

static void Capability_dealloc(Capability *self) {
    signature_free(&self->sig);
    Py_XDECREF(self->impl);
    Py_XDECREF(self->hooks);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int Capability_init(Capability *self, PyObject *args, PyObject *kwds) {
    PyObject *params, *result, *impl, *hooks;
    if (!PyArg_ParseTuple(args, "OOOO", &params, &result, &impl, &hooks)) return -1;
    signature_free(&self->sig);
    if (signature_init(&self->sig, params, result) < 0) return -1;
    Py_XSETREF(self->impl, Py_NewRef(impl));
    Py_XSETREF(self->hooks, Py_NewRef(hooks));
    return 0;
}

/* Ask a hook what to say about the current exception: a new str, or NULL. */
static PyObject *ask(Capability *self, const char *hook) {
    PyObject *exc = fetch();
    PyObject *said = PyObject_CallMethod(self->hooks, hook, "O", exc);
    Py_XDECREF(exc);
    if (said != NULL && !PyUnicode_Check(said)) Py_CLEAR(said);
    return said;
}

static void *trap(Capability *self) {
    PyObject *message = ask(self, "failed");
    const char *text = message ? PyUnicode_AsUTF8(message) : NULL;
    void *error = error_new(text ? text : "host function failed");
    Py_XDECREF(message);
    PyErr_Clear();
    return error;
}

/* Compose a callback's result and hand it to wasmtime: copied as it is when the type
 * says it holds no pointers, else deep-copied by wasmtime. -1 with an exception. */
static int answer(signature_t *s, arena_t *a, int ok, PyObject *value, val_t *results) {
    if (compose_result(s, a, ok, value) < 0) return -1;
    desc_t *payload = s->returns == 1 ? s->value : ok ? s->ok : s->err;
    bool direct = s->returns == 1 ? payload->code <= K_CHAR : payload == NULL;
    if (direct)
        memcpy(results, a->base, sizeof(val_t));
    else
        val_clone((val_t *)a->base, results);
    return 0;
}

/* After a callback: an arena grown for a big value does not stay that big. */
#define ARENA_KEEP (64 * 1024)

static void release(arena_t *a, bool own) {
    if (own || a->size > ARENA_KEEP) {
        PyMem_Free(a->base);
        memset(a, 0, sizeof(*a));
    }
}

static void *capability_call(Capability *self, const val_t *args, size_t nargs, val_t *results,
                             size_t nresults) {
    signature_t *s = &self->sig;
    if ((Py_ssize_t)nargs != s->count || nresults != (s->returns ? 1u : 0u)) {
        PyErr_Format(LayoutError, "called with %zu arguments and %zu results", nargs, nresults);
        return trap(self);
    }
    PyObject *stack[16];
    PyObject **values = nargs <= 16 ? stack : PyMem_Malloc(nargs * sizeof(PyObject *));
    if (values == NULL) return trap(self);
    size_t lifted = 0;
    for (; lifted < nargs; lifted++) {
        values[lifted] = lift(s->params[lifted], &args[lifted]);
        if (values[lifted] == NULL) break;
    }
    PyObject *value = lifted == nargs ? PyObject_Vectorcall(self->impl, values, nargs, NULL) : NULL;
    for (size_t i = 0; i < lifted; i++) Py_DECREF(values[i]);
    if (values != stack) PyMem_Free(values);
    if (lifted != nargs) return trap(self); /* unreadable arguments: never expected */
    if (value == NULL && (s->returns != 2 || !PyErr_ExceptionMatches(PyExc_Exception)))
        return trap(self); /* no error case to carry the failure in */

    int ok = value != NULL;
    if (!ok) { /* a refusal is the WIT error; anything else an internal error, logged */
        if (PyErr_ExceptionMatches(WasihostError)) {
            PyObject *exc = fetch();
            value = PyObject_Str(exc);
            Py_DECREF(exc);
        } else {
            value = ask(self, "internal");
        }
        if (value == NULL) return trap(self);
    }
    if (!s->returns) {
        Py_DECREF(value);
        return NULL;
    }
    /* Composing can run Python code (a Mapping's __getitem__, a property) that could
     * call back in on this thread: a nested callback composes in an arena of its own. */
    static _Thread_local arena_t arena; /* callbacks run on the thread that called in */
    static _Thread_local int depth;
    arena_t nested = {0};
    arena_t *a = depth ? &nested : &arena;
    depth++;
    void *error = NULL;
    if (answer(s, a, ok, value, results) < 0) {
        PyObject *said = s->returns == 2 ? ask(self, "bad_value") : NULL;
        if (said == NULL || answer(s, a, 0, said, results) < 0) error = trap(self);
        Py_XDECREF(said);
    }
    depth--;
    release(a, a == &nested);
    Py_DECREF(value);
    return error;
}

#if PY_VERSION_HEX >= 0x030D0000
#define FINALIZING() Py_IsFinalizing()
#else
#define FINALIZING() _Py_IsFinalizing()
#endif

static void *capability_callback(void *env, void *context, void *type, const val_t *args,
                                 size_t nargs, val_t *results, size_t nresults) {
    (void)context;
    (void)type;
    if (FINALIZING()) /* taking the GIL now would end this thread inside the guest */
        return error_new("the host is shutting down");
    PyGILState_STATE gil = PyGILState_Ensure();
    void *error = capability_call((Capability *)env, args, nargs, results, nresults);
    PyGILState_Release(gil);
    return error;
}

static void capability_finalizer(void *env) {
    if (!Py_IsInitialized()) return; /* the linker outlived the interpreter */
    PyGILState_STATE gil = PyGILState_Ensure();
    Py_DECREF((PyObject *)env);
    PyGILState_Release(gil);
}

static PyTypeObject CapabilityType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "wasihost.runtime._compiled.Capability",
    .tp_doc = "Capability(params, result, impl, hooks): a host function's compiled plan",
    .tp_basicsize = sizeof(Capability),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Capability_init,
    .tp_dealloc = (destructor)Capability_dealloc,
};

/* add(linker_instance_address, name, capability): define it in a linker instance. */
static PyObject *add(PyObject *module, PyObject *args) {
    unsigned long long instance;
    const char *name;
    Py_ssize_t size;
    PyObject *cap;
    if (!PyArg_ParseTuple(args, "Ks#O!", &instance, &name, &size, &CapabilityType, &cap))
        return NULL;
    if (((Capability *)cap)->impl == NULL) {
        PyErr_SetString(PyExc_ValueError, "Capability not initialised");
        return NULL;
    }
    Py_INCREF(cap); /* released by the finalizer when wasmtime drops the function */
    void *error = add_func((void *)(uintptr_t)instance, name, (size_t)size, capability_callback,
                           cap, capability_finalizer);
    if (error != NULL) /* wasmtime has run the finalizer already: no DECREF here */
        return PyLong_FromVoidPtr(error); /* the caller raises wasmtime's error */
    Py_RETURN_NONE;
}

/* ---- export calls -------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    bool busy;             /* composing or in the call: its arena and result slot are in use */
    signature_t sig;
    PyObject *func;        /* wasmtime-py's Func: its C struct must outlive every call */
    void *func_addr, *context;
    uint64_t deadline;     /* epoch ticks each call may run (0: left as it is) */
    PyObject *hooks;       /* wrong_count(n), unpassable(exc), trapped(address),
                              unreadable(exc), guest_error(value) -> an exception */
    arena_t arena;         /* arguments, lent to wasmtime for the call */
    val_t result;
} Export;

static PyObject *Export_vectorcall(Export *self, PyObject *const *args, size_t nargsf,
                                   PyObject *kwnames);

static void Export_dealloc(Export *self) {
    signature_free(&self->sig);
    Py_XDECREF(self->func);
    Py_XDECREF(self->hooks);
    PyMem_Free(self->arena.base);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int Export_init(Export *self, PyObject *args, PyObject *kwds) {
    PyObject *params, *result, *func, *hooks;
    unsigned long long func_addr, context, deadline;
    if (!PyArg_ParseTuple(args, "OOOKKKO", &params, &result, &func, &func_addr, &context,
                          &deadline, &hooks))
        return -1;
    signature_free(&self->sig);
    if (signature_init(&self->sig, params, result) < 0) return -1;
    Py_XSETREF(self->func, Py_NewRef(func));
    Py_XSETREF(self->hooks, Py_NewRef(hooks));
    self->func_addr = (void *)(uintptr_t)func_addr;
    self->context = (void *)(uintptr_t)context;
    self->deadline = deadline;
    self->vectorcall = (vectorcallfunc)Export_vectorcall;
    return 0;
}

/* Raise the exception a hook builds (always returns NULL). */
static PyObject *raise_from_hook(Export *self, const char *hook, PyObject *arg) {
    PyObject *exc = PyObject_CallMethod(self->hooks, hook, "O", arg);
    if (exc != NULL) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
    }
    return NULL;
}

static PyObject *raise_current_from_hook(Export *self, const char *hook) {
    PyObject *exc = fetch();
    raise_from_hook(self, hook, exc);
    Py_DECREF(exc);
    return NULL;
}

static int compose_args(Export *self, PyObject *const *args, Py_ssize_t count) {
    arena_t *a = &self->arena;
    for (;;) {
        a->top = 0;
        val_t *slots = take(a, (size_t)count * sizeof(val_t));
        int status = slots == NULL ? FULL : 0;
        for (Py_ssize_t i = 0; status == 0 && i < count; i++) {
            memset(&slots[i], 0, sizeof(val_t));
            status = lower(self->sig.params[i], args[i], &slots[i], a);
        }
        if (status != FULL) return status;
        if (grow(a) < 0) return -1;
    }
}

static PyObject *export_call(Export *self, PyObject *const *args, size_t nargsf,
                             PyObject *kwnames);

/* export(store, *args): like TypedExport, the store is the one this plan was made for.
 * Python code run while composing the arguments (a Mapping's __getitem__) could call the
 * same export again and reuse its arena: that is refused. */
static PyObject *Export_vectorcall(Export *self, PyObject *const *args, size_t nargsf,
                                   PyObject *kwnames) {
    if (self->func == NULL) {
        PyErr_SetString(PyExc_ValueError, "Export not initialised");
        return NULL;
    }
    if (self->busy) {
        PyObject *exc = PyObject_CallMethod(self->hooks, "reentered", NULL);
        if (exc != NULL) {
            PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
            Py_DECREF(exc);
        }
        return NULL;
    }
    self->busy = true;
    PyObject *value = export_call(self, args, nargsf, kwnames);
    self->busy = false;
    return value;
}

static PyObject *export_call(Export *self, PyObject *const *args, size_t nargsf,
                             PyObject *kwnames) {
    signature_t *s = &self->sig;
    Py_ssize_t count = PyVectorcall_NARGS(nargsf) - 1;
    if (kwnames != NULL || count != s->count) {
        PyObject *given = PyLong_FromSsize_t(count < 0 ? 0 : count);
        raise_from_hook(self, "wrong_count", given);
        Py_XDECREF(given);
        return NULL;
    }
    if (count > 0 && compose_args(self, args + 1, count) < 0) {
        if (PyErr_ExceptionMatches(ArgumentErrors))
            return raise_current_from_hook(self, "unpassable");
        return NULL;
    }
    void *error;
    val_t *result = &self->result;
    memset(result, 0, sizeof(val_t));
    if (self->deadline) set_epoch_deadline(self->context, self->deadline);
    Py_BEGIN_ALLOW_THREADS
    error = func_call(self->func_addr, self->context, count ? (val_t *)self->arena.base : NULL,
                      (size_t)count, result, s->returns ? 1 : 0);
    Py_END_ALLOW_THREADS
    if (error != NULL) {
        PyObject *address = PyLong_FromVoidPtr(error);
        if (address == NULL) return NULL;
        raise_from_hook(self, "trapped", address);
        Py_DECREF(address);
        return NULL;
    }
    if (!s->returns) Py_RETURN_NONE;
    PyObject *value = NULL;
    int ok = 1;
    if (s->returns == 1) {
        value = lift(s->value, result);
    } else if (result->kind != K_RESULT) {
        layout("result", K_RESULT, result->kind);
    } else {
        ok = result->of.result.is_ok;
        desc_t *payload = ok ? s->ok : s->err;
        if (payload == NULL)
            value = Py_NewRef(Py_None);
        else if (result->of.result.val == NULL)
            PyErr_SetString(LayoutError, "result case without its payload");
        else
            value = lift(payload, result->of.result.val);
    }
    val_delete(result);
    memset(result, 0, sizeof(val_t));
    if (value == NULL)
        return raise_current_from_hook(
            self, PyErr_ExceptionMatches(StringOverCap) ? "over_cap" : "unreadable");
    if (!ok) {
        raise_from_hook(self, "guest_error", value);
        Py_DECREF(value);
        return NULL;
    }
    return value;
}

static PyTypeObject ExportType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "wasihost.runtime._compiled.Export",
    .tp_doc = "Export(params, result, func, func_address, context, deadline, hooks): "
              "an export's compiled plan; call it as export(store, *args)",
    .tp_basicsize = sizeof(Export),
    .tp_vectorcall_offset = offsetof(Export, vectorcall),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Export_init,
    .tp_dealloc = (destructor)Export_dealloc,
    .tp_call = PyVectorcall_Call,
};

/* ---- set-up ----------------------------------------------------------------- */

static int address(PyObject *functions, const char *name, void **out) {
    PyObject *value = PyDict_GetItemString(functions, name);
    if (value == NULL) {
        PyErr_Format(PyExc_KeyError, "no address for %s", name);
        return -1;
    }
    *out = PyLong_AsVoidPtr(value);
    if (*out == NULL && !PyErr_Occurred())
        PyErr_Format(PyExc_ValueError, "no address for %s", name);
    return *out == NULL ? -1 : 0;
}

/* setup(functions, layout, kinds, LayoutError, WasihostError, argument_errors,
 * StringOverCap, shortened): refuses a layout other than the one this file was written for. */
static PyObject *setup(PyObject *module, PyObject *args) {
    PyObject *functions, *layout_given, *kinds, *layout_error, *wasihost_error, *argument_errors;
    PyObject *string_over_cap, *shortened;
    if (!PyArg_ParseTuple(args, "O!O!O!OOOOO", &PyDict_Type, &functions, &PyDict_Type,
                          &layout_given, &PyDict_Type, &kinds, &layout_error, &wasihost_error,
                          &argument_errors, &string_over_cap, &shortened))
        return NULL;
    const struct { const char *name; long value; } expected[] = {
        {"val", sizeof(val_t)},
        {"of", offsetof(val_t, of)},
        {"entry", sizeof(entry_t)},
        {"entry_val", offsetof(entry_t, val)},
        {"result_val", offsetof(val_t, of.result.val)},
        {"variant_val", offsetof(val_t, of.variant.val)},
    };
    for (size_t i = 0; i < sizeof(expected) / sizeof(expected[0]); i++) {
        PyObject *given = PyDict_GetItemString(layout_given, expected[i].name);
        if (given == NULL || PyLong_AsLong(given) != expected[i].value) {
            PyErr_Clear();
            return PyErr_Format(PyExc_RuntimeError, "wasmtime's layout changed: %s is %R, not %ld",
                                expected[i].name, given ? given : Py_None, expected[i].value);
        }
    }
    const char *kind_names[] = {"BOOL", "S8", "U8", "S16", "U16", "S32", "U32", "S64", "U64",
                                "F32", "F64", "CHAR", "STRING", "LIST", "RECORD", "TUPLE",
                                "VARIANT", "ENUM", "OPTION", "RESULT"};
    for (long i = 0; i < (long)(sizeof(kind_names) / sizeof(kind_names[0])); i++) {
        PyObject *given = PyDict_GetItemString(kinds, kind_names[i]);
        if (given == NULL || PyLong_AsLong(given) != i) {
            PyErr_Clear();
            return PyErr_Format(PyExc_RuntimeError, "wasmtime's value kind %s is %R, not %ld",
                                kind_names[i], given ? given : Py_None, i);
        }
    }
    if (address(functions, "wasmtime_component_func_call", (void **)&func_call) < 0
        || address(functions, "wasmtime_error_new", (void **)&error_new) < 0
        || address(functions, "wasmtime_component_val_clone", (void **)&val_clone) < 0
        || address(functions, "wasmtime_component_val_delete", (void **)&val_delete) < 0
        || address(functions, "wasmtime_context_set_epoch_deadline",
                   (void **)&set_epoch_deadline) < 0
        || address(functions, "wasmtime_component_linker_instance_add_func",
                   (void **)&add_func) < 0)
        return NULL;
    Py_XSETREF(LayoutError, Py_NewRef(layout_error));
    Py_XSETREF(WasihostError, Py_NewRef(wasihost_error));
    Py_XSETREF(ArgumentErrors, Py_NewRef(argument_errors));
    Py_XSETREF(StringOverCap, Py_NewRef(string_over_cap));
    Py_XSETREF(Shortened, Py_NewRef(shortened));
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"setup", setup, METH_VARARGS, "Hand over wasmtime's functions and check its layout."},
    {"add", add, METH_VARARGS, "Define a Capability in a linker instance (an error address or None)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_compiled", "Compiled call plans (see compiled.py).", -1, methods,
};

PyMODINIT_FUNC PyInit__compiled(void) {
    if (PyType_Ready(&CapabilityType) < 0 || PyType_Ready(&ExportType) < 0) return NULL;
    PyObject *module = PyModule_Create(&module_def);
    if (module == NULL) return NULL;
    if (PyModule_AddObjectRef(module, "Capability", (PyObject *)&CapabilityType) < 0
        || PyModule_AddObjectRef(module, "Export", (PyObject *)&ExportType) < 0
        || PyModule_AddIntConstant(module, "LIST_U8", K_LIST_U8) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
