/*
 * aggregate: compiling a view into a plan, the hash tables of groups and
 * distinct pairs (open addressing over an arena, so that a million groups
 * cost a million bumps of a pointer rather than a million mallocs), the
 * partial state of a group with its serialisation and merge, the output
 * order, and the output records.
 *
 * A group entry is a small header (rows, key length), then the plan's
 * cells (one per column summed or averaged, one per minimum and maximum),
 * then one counter per distinct spec, then the key bytes.
 */
#include "aggregate.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decimal.h"
#include "render.h"
#include "types.h"

/* Chunks start small, for the many small tables of partitions, and double
 * up to ARENA_CHUNK. */
#define ARENA_FIRST_CHUNK (16u << 10)
#define ARENA_CHUNK (1u << 20)
#define MAP_MIN_SLOTS 64u
#define ENTRY_ALIGN 16u
/* Bytes a varint takes at most. */
#define VARINT_MAX 10
/* Digits of a uint64. */
#define U64_DIGITS 20

/* Serialised forms of a sum. */
enum { SUM_SMALL, SUM_TEXT };

/* ---- arena ---- */

struct arena_chunk {
	struct arena_chunk *next;
	size_t size, used;
	_Alignas(ENTRY_ALIGN) uint8_t data[];
};

struct arena {
	struct arena_chunk *head;
	size_t next_chunk; /* size of the next chunk: doubles to ARENA_CHUNK */
	size_t bytes; /* handed out: pages of a chunk not yet touched are not
		       * resident, so they are not counted */
};

static size_t align_up(size_t n)
{
	return (n + ENTRY_ALIGN - 1) & ~(size_t)(ENTRY_ALIGN - 1);
}

/* n bytes aligned to ENTRY_ALIGN, or NULL on ENOMEM. */
static void *arena_alloc(struct arena *a, size_t n)
{
	struct arena_chunk *c = a->head;
	void *p;

	n = align_up(n);
	if (!c || c->size - c->used < n) {
		bool own = n > ARENA_CHUNK / 4;
		size_t size = own	      ? n
			      : a->next_chunk ? a->next_chunk
					      : ARENA_FIRST_CHUNK;

		while (size < n)
			size *= 2;
		c = malloc(sizeof(*c) + size);
		if (!c)
			return NULL;
		c->size = size;
		c->used = 0;
		if (!own)
			a->next_chunk =
			    size < ARENA_CHUNK ? size * 2 : ARENA_CHUNK;
		/* A large entry gets a chunk of its own behind the head, which
		 * keeps its room for the small ones. */
		if (a->head && own) {
			c->next = a->head->next;
			a->head->next = c;
		} else {
			c->next = a->head;
			a->head = c;
		}
	}
	p = c->data + c->used;
	c->used += n;
	a->bytes += n;
	return p;
}

static void arena_release(struct arena *a)
{
	while (a->head) {
		struct arena_chunk *next = a->head->next;

		free(a->head);
		a->head = next;
	}
	a->bytes = 0;
}

/* ---- hash map ---- */

struct slot {
	uint64_t hash;
	void *entry; /* NULL: empty */
};

struct map {
	struct slot *slots; /* NULL until the first entry */
	size_t mask;	    /* slots - 1 */
	size_t count;
	struct arena arena;
};

static uint64_t mix(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

static uint64_t hash_bytes(const uint8_t *p, size_t n)
{
	uint64_t h = 0x9e3779b97f4a7c15ULL ^ n, w;

	for (; n >= 8; p += 8, n -= 8) {
		memcpy(&w, p, 8);
		h = (h ^ w) * 0x100000001b3ULL;
		h ^= h >> 29;
	}
	w = 0;
	if (n)
		memcpy(&w, p, n);
	return mix(h ^ w);
}

static size_t map_bytes(const struct map *m)
{
	return (m->slots ? (m->mask + 1) * sizeof(struct slot) : 0) +
	       m->arena.bytes;
}

/* Make room for one more entry: at most half the slots are used. */
static int map_reserve(struct map *m)
{
	size_t n = m->slots ? (m->mask + 1) * 2 : MAP_MIN_SLOTS;
	struct slot *s;

	if (m->slots && (m->count + 1) * 2 <= m->mask + 1)
		return 0;
	s = calloc(n, sizeof(*s));
	if (!s)
		return -ENOMEM;
	for (size_t i = 0; m->slots && i <= m->mask; i++) {
		size_t j = m->slots[i].hash & (n - 1);

		if (!m->slots[i].entry)
			continue;
		while (s[j].entry)
			j = (j + 1) & (n - 1);
		s[j] = m->slots[i];
	}
	free(m->slots);
	m->slots = s;
	m->mask = n - 1;
	return 0;
}

static void map_release(struct map *m)
{
	free(m->slots);
	arena_release(&m->arena);
	memset(m, 0, sizeof(*m));
}

/* ---- group entries ---- */

struct agg_group {
	uint64_t rows;
	uint64_t key_len;
};

struct cell {
	uint64_t n; /* non-NULL values (CELL_SUM) */
	union {
		struct decimal_sum sum;
		struct {
			uint8_t *data; /* NULL: no value yet */
			size_t len;
		} extreme;
	} u;
};

struct agg_table {
	const struct agg_plan *plan;
	struct map groups;
	struct map pairs;
	size_t heap_bytes;	   /* minima, maxima and long sums */
	struct buf key, pair, num; /* scratch */
};

static struct cell *group_cells(const struct agg_plan *p,
				const struct agg_group *g)
{
	return (struct cell *)((uintptr_t)g + p->cells_off);
}

static uint64_t *group_counters(const struct agg_plan *p,
				const struct agg_group *g)
{
	return (uint64_t *)((uintptr_t)g + p->counters_off);
}

static const uint8_t *group_key(const struct agg_plan *p,
				const struct agg_group *g)
{
	return (const uint8_t *)g + p->key_off;
}

/* The group of key[0..len) (hash h), created empty if it is new. */
static int group_get(struct agg_table *t, uint64_t h, const uint8_t *key,
		     size_t len, struct agg_group **out)
{
	const struct agg_plan *p = t->plan;
	struct map *m = &t->groups;
	struct agg_group *g;
	size_t i;
	int rc = map_reserve(m);

	if (rc)
		return rc;
	for (i = h & m->mask; m->slots[i].entry; i = (i + 1) & m->mask) {
		g = m->slots[i].entry;
		/* An empty key (no group_by) may come as NULL. */
		if (m->slots[i].hash == h && g->key_len == len &&
		    (!len || !memcmp(group_key(p, g), key, len))) {
			*out = g;
			return 0;
		}
	}
	g = arena_alloc(&m->arena, p->key_off + len);
	if (!g)
		return -ENOMEM;
	memset(g, 0, p->key_off);
	g->key_len = len;
	if (len)
		memcpy((uint8_t *)g + p->key_off, key, len);
	m->slots[i].hash = h;
	m->slots[i].entry = g;
	m->count++;
	*out = g;
	return 0;
}

struct pair {
	uint64_t len;
	uint8_t bytes[];
};

/* Add pair[0..len) (hash h) unless it is there. */
static int pair_put(struct agg_table *t, uint64_t h, const uint8_t *pair,
		    size_t len)
{
	struct map *m = &t->pairs;
	struct pair *e;
	size_t i;
	int rc = map_reserve(m);

	if (rc)
		return rc;
	for (i = h & m->mask; m->slots[i].entry; i = (i + 1) & m->mask) {
		e = m->slots[i].entry;
		if (m->slots[i].hash == h && e->len == len &&
		    !memcmp(e->bytes, pair, len))
			return 0;
	}
	e = arena_alloc(&m->arena, sizeof(*e) + len);
	if (!e)
		return -ENOMEM;
	e->len = len;
	memcpy(e->bytes, pair, len);
	m->slots[i].hash = h;
	m->slots[i].entry = e;
	m->count++;
	return 0;
}

/* ---- values ---- */

static int sign_of(int c)
{
	return (c > 0) - (c < 0);
}

static int bytes_compare(const uint8_t *a, size_t na, const uint8_t *b,
			 size_t nb)
{
	int c = memcmp(a, b, na < nb ? na : nb);

	if (c)
		return sign_of(c);
	return (na > nb) - (na < nb);
}

static const struct instant *datetime_instant(const struct datetime *dt)
{
	return dt->zoned ? &dt->utc : &dt->local;
}

/* The order of two non-NULL values of type, a total one: numbers by
 * value, datetimes by instant, then (and everything else) by bytes. */
static int value_order(enum col_type type, const uint8_t *a, size_t na,
		       const uint8_t *b, size_t nb)
{
	struct datetime x, y;
	int c;

	switch (type) {
	case COL_INT:
	case COL_DECIMAL:
		return decimal_compare((const char *)a, na, (const char *)b,
				       nb);
	case COL_DATETIME:
		if (datetime_parse((const char *)a, na, &x) &&
		    datetime_parse((const char *)b, nb, &y)) {
			c = instant_compare(datetime_instant(&x),
					    datetime_instant(&y));
			if (c)
				return c;
		}
		break;
	case COL_STRING:
	case COL_DATE:
		break;
	}
	return bytes_compare(a, na, b, nb);
}

static bool type_is_number(enum col_type type)
{
	return type == COL_INT || type == COL_DECIMAL;
}

int agg_key_compare(const struct agg_plan *plan, const uint8_t *a, size_t na,
		    const uint8_t *b, size_t nb)
{
	size_t pa = 0, pb = 0;

	for (size_t i = 0; i < plan->nkeys; i++) {
		struct rowfmt_field fa, fb;
		int c;

		if (rowfmt_next(a, na, &pa, 1, &fa) ||
		    rowfmt_next(b, nb, &pb, 1, &fb))
			return bytes_compare(a, na, b, nb);
		if (!fa.len || !fb.len) {
			if (fa.len != fb.len)
				return fa.len ? 1 : -1;
			continue;
		}
		c = value_order(plan->keys[i].type, fa.data, fa.len, fb.data,
				fb.len);
		if (c)
			return c;
	}
	return 0;
}

/* ---- the plan ---- */

static size_t cell_index(struct agg_plan *p, enum agg_cell_kind kind,
			 size_t src, enum col_type type)
{
	for (size_t i = 0; i < p->ncells; i++)
		if (p->cells[i].kind == kind && p->cells[i].src == src)
			return i;
	p->cells[p->ncells] =
	    (struct agg_cell_spec){.kind = kind, .src = src, .type = type};
	return p->ncells++;
}

static size_t distinct_index(struct agg_plan *p, size_t src, enum col_type type)
{
	for (size_t i = 0; i < p->ndistinct; i++)
		if (p->distinct[i].src == src)
			return i;
	p->distinct[p->ndistinct].src = src;
	p->distinct[p->ndistinct].numeric = type_is_number(type);
	return p->ndistinct++;
}

/* The column named name, or -EINVAL naming path. */
static long find_source(const struct schema *schema, const char *name,
			const char *path, size_t i, struct perr *err)
{
	long src = schema_find(schema, name);

	if (src < 0)
		perr_set(err, "$.%s[%zu]: no such column '%s'", path, i, name);
	return src;
}

static int plan_keys(struct agg_plan *p, const struct schema *schema,
		     const struct view *view, struct perr *err)
{
	for (size_t i = 0; i < view->nkeys; i++) {
		const struct group_key *gk = &view->keys[i];
		struct agg_key *k = &p->keys[p->nkeys];
		long src = find_source(schema, gk->column, "group_by", i, err);

		if (src < 0)
			return -EINVAL;
		p->nkeys++;
		k->src = (size_t)src;
		k->in_type = schema->cols[src].type;
		k->type = k->in_type;
		k->canonical = !gk->has_rule && type_is_number(k->in_type);
		k->has_rule = gk->has_rule;
		if (!gk->has_rule)
			continue;
		k->rule = gk->rule;
		k->rule.width = gk->rule.width ? strdup(gk->rule.width) : NULL;
		if (gk->rule.width && !k->rule.width)
			return -ENOMEM;
		k->type = rule_output_type(&k->rule, k->in_type);
	}
	return 0;
}

static enum col_type measure_type(enum measure_kind kind, enum col_type src)
{
	switch (kind) {
	case MEASURE_COUNT:
	case MEASURE_COUNT_DISTINCT:
		return COL_INT;
	case MEASURE_AVG:
		return COL_DECIMAL;
	case MEASURE_SUM:
	case MEASURE_MIN:
	case MEASURE_MAX:
		break;
	}
	return src;
}

static const enum agg_cell_kind cell_of_measure[] = {
    [MEASURE_SUM] = CELL_SUM,
    [MEASURE_AVG] = CELL_SUM,
    [MEASURE_MIN] = CELL_MIN,
    [MEASURE_MAX] = CELL_MAX,
};

static int plan_measures(struct agg_plan *p, const struct schema *schema,
			 const struct view *view, struct perr *err)
{
	for (size_t i = 0; i < view->nmeasures; i++) {
		const struct measure *m = &view->measures[i];
		struct agg_measure *am = &p->measures[i];
		enum col_type type = COL_INT;
		long src = 0;

		am->kind = m->kind;
		if (m->kind != MEASURE_COUNT) {
			src =
			    find_source(schema, m->column, "measures", i, err);
			if (src < 0)
				return -EINVAL;
			type = schema->cols[src].type;
		}
		if (m->kind == MEASURE_COUNT_DISTINCT)
			am->index = distinct_index(p, (size_t)src, type);
		else if (m->kind != MEASURE_COUNT)
			am->index = cell_index(p, cell_of_measure[m->kind],
					       (size_t)src, type);
		p->out_types[p->nkeys + i] = measure_type(m->kind, type);
		p->out_names[p->nkeys + i] = measure_header(m);
		if (!p->out_names[p->nkeys + i])
			return -ENOMEM;
	}
	p->nmeasures = view->nmeasures;
	return 0;
}

static int plan_entity(struct agg_plan *p, const struct schema *schema,
		       const struct view *view, struct perr *err)
{
	long src;

	p->entity = -1;
	if (!view->entity)
		return 0;
	src = schema_find(schema, view->entity);
	if (src < 0)
		return perr_set(err, "$.entity: no such column '%s'",
				view->entity);
	p->entity =
	    (long)distinct_index(p, (size_t)src, schema->cols[src].type);
	return 0;
}

static int plan_alloc(struct agg_plan *p, const struct view *view)
{
	size_t nout = view->nkeys + view->nmeasures;

	p->keys = calloc(view->nkeys + 1, sizeof(*p->keys));
	p->measures = calloc(view->nmeasures + 1, sizeof(*p->measures));
	p->cells = calloc(view->nmeasures + 1, sizeof(*p->cells));
	p->distinct = calloc(view->nmeasures + 2, sizeof(*p->distinct));
	p->out_names = calloc(nout + 1, sizeof(*p->out_names));
	p->out_types = calloc(nout + 1, sizeof(*p->out_types));
	p->nout = nout;
	if (!p->keys || !p->measures || !p->cells || !p->distinct ||
	    !p->out_names || !p->out_types)
		return -ENOMEM;
	return 0;
}

int agg_plan_init(struct agg_plan *plan, const struct schema *schema,
		  const struct view *view, const struct filter *filter,
		  struct perr *err)
{
	int rc;

	memset(plan, 0, sizeof(*plan));
	plan->nsrc = schema->ncols;
	plan->filter = filter;
	plan->min_group = view->min_group;
	rc = plan_alloc(plan, view);
	if (!rc)
		rc = plan_keys(plan, schema, view, err);
	for (size_t i = 0; !rc && i < plan->nkeys; i++) {
		plan->out_types[i] = plan->keys[i].type;
		plan->out_names[i] = strdup(view->keys[i].column);
		if (!plan->out_names[i])
			rc = -ENOMEM;
	}
	if (!rc)
		rc = plan_measures(plan, schema, view, err);
	if (!rc)
		rc = plan_entity(plan, schema, view, err);
	if (rc) {
		if (rc == -ENOMEM)
			perr_set(err, "out of memory");
		agg_plan_release(plan);
		return rc;
	}
	plan->cells_off = align_up(sizeof(struct agg_group));
	plan->counters_off =
	    plan->cells_off + plan->ncells * sizeof(struct cell);
	plan->key_off = plan->counters_off + plan->ndistinct * sizeof(uint64_t);
	return 0;
}

void agg_plan_release(struct agg_plan *plan)
{
	for (size_t i = 0; plan->keys && i < plan->nkeys; i++)
		free(plan->keys[i].rule.width);
	for (size_t i = 0; plan->out_names && i < plan->nout; i++)
		free(plan->out_names[i]);
	free(plan->keys);
	free(plan->measures);
	free(plan->cells);
	free(plan->distinct);
	free(plan->out_names);
	free(plan->out_types);
	memset(plan, 0, sizeof(*plan));
}

int agg_plan_output_schema(const struct agg_plan *plan, struct schema *out)
{
	memset(out, 0, sizeof(*out));
	out->cols = calloc(plan->nout + 1, sizeof(*out->cols));
	if (!out->cols)
		return -ENOMEM;
	for (size_t i = 0; i < plan->nout; i++) {
		out->cols[i].name = strdup(plan->out_names[i]);
		out->cols[i].type = plan->out_types[i];
		out->cols[i].level = LEVEL_MIN;
		out->ncols++;
		if (!out->cols[i].name) {
			schema_release(out);
			return -ENOMEM;
		}
	}
	return 0;
}

static int append_text(struct buf *out, const char *s)
{
	return buf_append(out, s, strlen(s) + 1);
}

int agg_fingerprint(const struct view *view, const char *rows, struct buf *out)
{
	char text[RULE_TEXT_MAX + 32];
	int rc = 0;

	out->len = 0;
	for (size_t i = 0; i < view->nkeys && !rc; i++) {
		const struct group_key *k = &view->keys[i];

		rc = append_text(out, k->column);
		if (!rc)
			rc = append_text(
			    out, k->has_rule
				     ? rule_text(&k->rule, text, sizeof(text))
				     : "");
	}
	for (size_t i = 0; i < view->nmeasures && !rc; i++) {
		char *name = measure_header(&view->measures[i]);

		rc = name ? append_text(out, name) : -ENOMEM;
		free(name);
	}
	snprintf(text, sizeof(text), "min_group %u", view->min_group);
	if (!rc)
		rc = append_text(out, text);
	if (!rc)
		rc = append_text(out, view->entity ? view->entity : "");
	if (!rc)
		rc = append_text(out, rows ? rows : "");
	return rc;
}

/* ---- tables ---- */

struct agg_table *agg_table_new(const struct agg_plan *plan)
{
	struct agg_table *t = calloc(1, sizeof(*t));

	if (t)
		t->plan = plan;
	return t;
}

static void group_release_values(const struct agg_plan *p, struct agg_group *g)
{
	struct cell *cells = group_cells(p, g);

	for (size_t i = 0; i < p->ncells; i++) {
		if (p->cells[i].kind == CELL_SUM)
			decimal_sum_release(&cells[i].u.sum);
		else
			free(cells[i].u.extreme.data);
	}
}

void agg_table_clear_groups(struct agg_table *t)
{
	for (size_t i = 0; t->groups.slots && i <= t->groups.mask; i++)
		if (t->groups.slots[i].entry)
			group_release_values(t->plan, t->groups.slots[i].entry);
	map_release(&t->groups);
	t->heap_bytes = 0;
}

void agg_table_clear_pairs(struct agg_table *t)
{
	map_release(&t->pairs);
}

void agg_table_free(struct agg_table *t)
{
	if (!t)
		return;
	agg_table_clear_groups(t);
	agg_table_clear_pairs(t);
	buf_release(&t->key);
	buf_release(&t->pair);
	buf_release(&t->num);
	free(t);
}

size_t agg_table_group_bytes(const struct agg_table *t)
{
	return map_bytes(&t->groups) + t->heap_bytes;
}

size_t agg_table_pair_bytes(const struct agg_table *t)
{
	return map_bytes(&t->pairs);
}

size_t agg_table_ngroups(const struct agg_table *t)
{
	return t->groups.count;
}

size_t agg_table_npairs(const struct agg_table *t)
{
	return t->pairs.count;
}

size_t agg_table_group_slots(const struct agg_table *t)
{
	return t->groups.slots ? t->groups.mask + 1 : 0;
}

const struct agg_group *agg_table_group_at(const struct agg_table *t, size_t i,
					   uint64_t *hash)
{
	*hash = t->groups.slots[i].hash;
	return t->groups.slots[i].entry;
}

size_t agg_table_pair_slots(const struct agg_table *t)
{
	return t->pairs.slots ? t->pairs.mask + 1 : 0;
}

bool agg_table_pair_at(const struct agg_table *t, size_t i, uint64_t *hash,
		       const uint8_t **pair, size_t *len)
{
	const struct pair *e = t->pairs.slots[i].entry;

	if (!e)
		return false;
	*hash = t->pairs.slots[i].hash;
	*pair = e->bytes;
	*len = e->len;
	return true;
}

/* ---- feeding records ---- */

/* -EINVAL from the decimal functions means the stored value is bad. */
static int value_error(int rc)
{
	return rc == -EINVAL ? -EIO : rc;
}

static int put_ruled_key(struct agg_table *t, const struct agg_key *k,
			 const struct rowfmt_field *f)
{
	static const size_t date_len[] = {
	    [RULE_DATE_YEAR] = 4, [RULE_DATE_MONTH] = 7, [RULE_DATE_DAY] = 10};
	size_t n;
	int rc;

	switch (k->rule.kind) {
	case RULE_DATE_YEAR:
	case RULE_DATE_MONTH:
	case RULE_DATE_DAY:
		n = date_len[k->rule.kind];
		return rowfmt_put_field(&t->key, f->data,
					f->len < n ? f->len : n, false);
	case RULE_PREFIX:
		n = utf8_prefix_bytes(f->data, f->len, k->rule.n);
		return rowfmt_put_field(&t->key, f->data, n,
					f->needs_quote &&
					    csv_needs_quote(f->data, n));
	case RULE_BUCKET:
		t->num.len = 0;
		rc = decimal_bucket((const char *)f->data, f->len,
				    k->rule.width, &t->num);
		if (rc)
			return value_error(rc);
		return rowfmt_put_field(&t->key, t->num.data, t->num.len,
					false);
	default:
		return -EIO;
	}
}

static int put_key_field(struct agg_table *t, const struct agg_key *k,
			 const struct rowfmt_field *f)
{
	int rc;

	if (!f->len)
		return rowfmt_put_field(&t->key, NULL, 0, false);
	if (k->has_rule)
		return put_ruled_key(t, k, f);
	if (!k->canonical)
		return rowfmt_put_field(&t->key, f->data, f->len,
					f->needs_quote);
	t->num.len = 0;
	rc = decimal_canonical((const char *)f->data, f->len, &t->num);
	if (rc)
		return value_error(rc);
	return rowfmt_put_field(&t->key, t->num.data, t->num.len, false);
}

/* Keep v as the cell's value: numbers canonically. */
static int extreme_set(struct agg_table *t, const struct agg_cell_spec *spec,
		       struct cell *c, const uint8_t *v, size_t len)
{
	uint8_t *copy;
	int rc;

	if (type_is_number(spec->type)) {
		t->num.len = 0;
		rc = decimal_canonical((const char *)v, len, &t->num);
		if (rc)
			return value_error(rc);
		v = t->num.data;
		len = t->num.len;
	}
	copy = malloc(len);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, v, len);
	t->heap_bytes += len;
	t->heap_bytes -= c->u.extreme.len;
	free(c->u.extreme.data);
	c->u.extreme.data = copy;
	c->u.extreme.len = len;
	return 0;
}

/* Offer v to a minimum or maximum cell. */
static int extreme_offer(struct agg_table *t, const struct agg_cell_spec *spec,
			 struct cell *c, const uint8_t *v, size_t len)
{
	int order;

	if (c->u.extreme.data) {
		order = value_order(spec->type, v, len, c->u.extreme.data,
				    c->u.extreme.len);
		if (spec->kind == CELL_MIN ? order >= 0 : order <= 0)
			return 0;
	}
	return extreme_set(t, spec, c, v, len);
}

static int sum_merge(struct agg_table *t, struct cell *c,
		     const struct decimal_sum *s, uint64_t n)
{
	size_t before = decimal_sum_heap_bytes(&c->u.sum);
	int rc = decimal_sum_merge(&c->u.sum, s);

	t->heap_bytes += decimal_sum_heap_bytes(&c->u.sum);
	t->heap_bytes -= before;
	if (!rc)
		c->n += n;
	return rc;
}

static int cell_add(struct agg_table *t, const struct agg_cell_spec *spec,
		    struct cell *c, const struct rowfmt_field *f)
{
	size_t before;
	int rc;

	if (!f->len)
		return 0;
	if (spec->kind != CELL_SUM)
		return extreme_offer(t, spec, c, f->data, f->len);
	before = decimal_sum_heap_bytes(&c->u.sum);
	rc = decimal_sum_add(&c->u.sum, (const char *)f->data, f->len);
	t->heap_bytes += decimal_sum_heap_bytes(&c->u.sum);
	t->heap_bytes -= before;
	if (rc)
		return value_error(rc);
	c->n++;
	return 0;
}

/* The pair (distinct spec d, the record's key, value f) into t->pair. */
static int make_pair(struct agg_table *t, size_t d,
		     const struct rowfmt_field *f)
{
	int rc;

	t->pair.len = 0;
	rc = rowfmt_put_varint(&t->pair, d);
	if (!rc)
		rc = buf_append(&t->pair, t->key.data, t->key.len);
	if (rc)
		return rc;
	if (!t->plan->distinct[d].numeric)
		return buf_append(&t->pair, f->data, f->len);
	return value_error(
	    decimal_canonical((const char *)f->data, f->len, &t->pair));
}

static int add_pairs(struct agg_table *t, const struct rowfmt_field *fields)
{
	const struct agg_plan *p = t->plan;
	int rc = 0;

	for (size_t d = 0; d < p->ndistinct && !rc; d++) {
		const struct rowfmt_field *f = &fields[p->distinct[d].src];

		if (!f->len)
			continue;
		rc = make_pair(t, d, f);
		if (!rc)
			rc = pair_put(t, hash_bytes(t->pair.data, t->pair.len),
				      t->pair.data, t->pair.len);
	}
	return rc;
}

int agg_table_add(struct agg_table *t, const struct rowfmt_field *fields)
{
	const struct agg_plan *p = t->plan;
	struct agg_group *g;
	struct cell *cells;
	int rc = 0;

	if (!filter_matches(p->filter, fields))
		return 0;
	t->key.len = 0;
	for (size_t i = 0; i < p->nkeys && !rc; i++)
		rc = put_key_field(t, &p->keys[i], &fields[p->keys[i].src]);
	if (!rc)
		rc = group_get(t, hash_bytes(t->key.data, t->key.len),
			       t->key.data, t->key.len, &g);
	if (rc)
		return rc;
	g->rows++;
	cells = group_cells(p, g);
	for (size_t i = 0; i < p->ncells && !rc; i++)
		rc = cell_add(t, &p->cells[i], &cells[i],
			      &fields[p->cells[i].src]);
	if (!rc && p->ndistinct)
		rc = add_pairs(t, fields);
	return rc;
}

/* ---- partial states: serialise and merge ---- */

static int put_u128(struct buf *out, decimal_int128 v)
{
	unsigned __int128 u = (unsigned __int128)v;
	uint8_t b[16];

	for (int i = 0; i < 16; i++)
		b[i] = (uint8_t)(u >> (8 * i));
	return buf_append(out, b, sizeof(b));
}

static int serialize_sum(const struct cell *c, struct buf *out)
{
	const struct decimal_sum *s = &c->u.sum;
	int rc = rowfmt_put_varint(out, c->n);

	if (!rc)
		rc = rowfmt_put_varint(out, s->text ? SUM_TEXT : SUM_SMALL);
	if (rc)
		return rc;
	if (s->text)
		return rowfmt_put_field(out, s->text, s->text_len, false);
	rc = put_u128(out, s->value);
	if (!rc)
		rc = rowfmt_put_varint(out, s->scale);
	return rc;
}

int agg_group_serialize(const struct agg_table *t, const struct agg_group *g,
			struct buf *out)
{
	const struct agg_plan *p = t->plan;
	const struct cell *cells = group_cells(p, g);
	const uint64_t *counters = group_counters(p, g);
	int rc = rowfmt_put_varint(out, g->key_len);

	if (!rc)
		rc = buf_append(out, group_key(p, g), g->key_len);
	if (!rc)
		rc = rowfmt_put_varint(out, g->rows);
	for (size_t i = 0; i < p->ncells && !rc; i++) {
		if (p->cells[i].kind == CELL_SUM)
			rc = serialize_sum(&cells[i], out);
		else
			rc = rowfmt_put_field(out, cells[i].u.extreme.data,
					      cells[i].u.extreme.len, false);
	}
	for (size_t i = 0; i < p->ndistinct && !rc; i++)
		rc = rowfmt_put_varint(out, counters[i]);
	return rc;
}

/* A cursor over a serialised record; every read fails with -EIO past
 * its end. */
struct reader {
	const uint8_t *p;
	size_t len, pos;
};

static int read_varint(struct reader *r, uint64_t *v)
{
	return rowfmt_varint(r->p, r->len, &r->pos, v);
}

static int read_bytes(struct reader *r, size_t n, const uint8_t **out)
{
	if (n > r->len - r->pos)
		return -EIO;
	*out = r->p + r->pos;
	r->pos += n;
	return 0;
}

static int read_field(struct reader *r, const uint8_t **data, size_t *len)
{
	struct rowfmt_field f;
	int rc = rowfmt_next(r->p, r->len, &r->pos, 1, &f);

	*data = f.data;
	*len = f.len;
	return rc;
}

static int read_sum(struct reader *r, struct decimal_sum *s, uint64_t *n)
{
	const uint8_t *b;
	uint64_t form, scale;
	unsigned __int128 u = 0;
	size_t len;
	int rc;

	memset(s, 0, sizeof(*s));
	rc = read_varint(r, n);
	if (!rc)
		rc = read_varint(r, &form);
	if (!rc && form == SUM_TEXT) {
		rc = read_field(r, &b, &len);
		s->text = (char *)b; /* borrowed: merged, never freed */
		s->text_len = len;
		return rc || !value_is_decimal(s->text, len) ? -EIO : 0;
	}
	if (!rc && form == SUM_SMALL)
		rc = read_bytes(r, 16, &b);
	if (!rc && form == SUM_SMALL)
		rc = read_varint(r, &scale);
	/* No sum this code writes keeps more fraction digits: a larger
	 * scale would be text no buffer was sized for. */
	if (rc || form != SUM_SMALL || scale > DECIMAL_SUM_SCALE_MAX)
		return -EIO;
	for (int i = 15; i >= 0; i--)
		u = u << 8 | b[i];
	s->value = (decimal_int128)u;
	s->scale = (uint32_t)scale;
	return 0;
}

static int merge_cell(struct agg_table *t, const struct agg_cell_spec *spec,
		      struct cell *c, struct reader *r)
{
	struct decimal_sum s;
	const uint8_t *v;
	uint64_t n;
	size_t len;
	int rc;

	if (spec->kind != CELL_SUM) {
		rc = read_field(r, &v, &len);
		return rc || !len ? rc : extreme_offer(t, spec, c, v, len);
	}
	rc = read_sum(r, &s, &n);
	return rc ? rc : sum_merge(t, c, &s, n);
}

int agg_table_merge_group(struct agg_table *t, const uint8_t *rec, size_t len)
{
	const struct agg_plan *p = t->plan;
	struct reader r = {rec, len, 0};
	const uint8_t *key;
	uint64_t key_len, rows, n;
	struct agg_group *g;
	int rc;

	rc = read_varint(&r, &key_len);
	if (!rc)
		rc = read_bytes(&r, key_len, &key);
	if (!rc)
		rc = read_varint(&r, &rows);
	if (!rc)
		rc = group_get(t, hash_bytes(key, key_len), key, key_len, &g);
	if (rc)
		return rc;
	g->rows += rows;
	for (size_t i = 0; i < p->ncells && !rc; i++)
		rc = merge_cell(t, &p->cells[i], &group_cells(p, g)[i], &r);
	for (size_t i = 0; i < p->ndistinct && !rc; i++) {
		rc = read_varint(&r, &n);
		if (!rc)
			group_counters(p, g)[i] += n;
	}
	if (!rc && r.pos != len)
		rc = -EIO;
	return rc;
}

int agg_table_add_pair(struct agg_table *t, const uint8_t *pair, size_t len)
{
	return pair_put(t, hash_bytes(pair, len), pair, len);
}

int agg_table_count_pair(struct agg_table *t, const uint8_t *pair, size_t len)
{
	struct reader r = {pair, len, 0};
	struct rowfmt_field f;
	struct agg_group *g;
	size_t start;
	uint64_t d;
	int rc = read_varint(&r, &d);

	if (rc || d >= t->plan->ndistinct)
		return -EIO;
	start = r.pos;
	for (size_t i = 0; i < t->plan->nkeys && !rc; i++)
		rc = rowfmt_next(pair, len, &r.pos, 1, &f);
	if (!rc)
		rc = group_get(t, hash_bytes(pair + start, r.pos - start),
			       pair + start, r.pos - start, &g);
	if (!rc)
		group_counters(t->plan, g)[d]++;
	return rc;
}

int agg_table_count_own_pairs(struct agg_table *t)
{
	const uint8_t *pair;
	uint64_t hash;
	size_t len;
	int rc = 0;

	for (size_t i = 0; i < agg_table_pair_slots(t) && !rc; i++)
		if (agg_table_pair_at(t, i, &hash, &pair, &len))
			rc = agg_table_count_pair(t, pair, len);
	if (!rc)
		agg_table_clear_pairs(t);
	return rc;
}

/* ---- output ---- */

static bool group_shown(const struct agg_plan *p, const struct agg_group *g)
{
	if (g->rows < p->min_group)
		return false;
	return p->entity < 0 || group_counters(p, g)[p->entity] >= p->min_group;
}

static int compare_groups(const void *a, const void *b, void *ctx)
{
	const struct agg_plan *p = ctx;
	const struct agg_group *x = *(const struct agg_group *const *)a;
	const struct agg_group *y = *(const struct agg_group *const *)b;

	return agg_key_compare(p, group_key(p, x), x->key_len, group_key(p, y),
			       y->key_len);
}

int agg_table_shown_sorted(const struct agg_table *t,
			   const struct agg_group ***out, size_t *n)
{
	const struct agg_group **arr;
	const struct agg_group *g;
	size_t count = 0;
	uint64_t hash;

	arr = malloc((t->groups.count + 1) * sizeof(*arr));
	if (!arr)
		return -ENOMEM;
	for (size_t i = 0; i < agg_table_group_slots(t); i++) {
		g = agg_table_group_at(t, i, &hash);
		if (g && group_shown(t->plan, g))
			arr[count++] = g;
	}
	qsort_r(arr, count, sizeof(*arr), compare_groups, (void *)t->plan);
	*out = arr;
	*n = count;
	return 0;
}

static int put_count(struct buf *out, uint64_t v)
{
	char text[U64_DIGITS + 1];
	int len = snprintf(text, sizeof(text), "%" PRIu64, v);

	return rowfmt_put_field(out, text, (size_t)len, false);
}

/* sum or avg of a cell into out as one field (NULL if no value). */
/* sum or avg of a cell into out as one field (NULL if no value); sum and
 * avg are scratch for the texts. */
static int put_sum(const struct cell *c, bool average, struct buf *sum,
		   struct buf *avg, struct buf *out)
{
	int rc;

	if (!c->n)
		return rowfmt_put_field(out, NULL, 0, false);
	sum->len = 0;
	rc = decimal_sum_text(&c->u.sum, sum);
	if (rc || !average)
		return rc ? rc
			  : rowfmt_put_field(out, sum->data, sum->len, false);
	avg->len = 0;
	rc = decimal_div_round((const char *)sum->data, sum->len, c->n,
			       AGG_AVG_PLACES, avg);
	if (rc)
		return value_error(rc);
	return rowfmt_put_field(out, avg->data, avg->len, false);
}

int agg_group_output(const struct agg_table *t, const struct agg_group *g,
		     struct buf *out)
{
	const struct agg_plan *p = t->plan;
	const struct cell *cells = group_cells(p, g);
	struct buf sum = BUF_INIT, avg = BUF_INIT;
	int rc = buf_append(out, group_key(p, g), g->key_len);

	for (size_t i = 0; i < p->nmeasures && !rc; i++) {
		const struct agg_measure *m = &p->measures[i];
		const struct cell *c = &cells[m->index];

		switch (m->kind) {
		case MEASURE_COUNT:
			rc = put_count(out, g->rows);
			break;
		case MEASURE_COUNT_DISTINCT:
			rc = put_count(out, group_counters(p, g)[m->index]);
			break;
		case MEASURE_SUM:
		case MEASURE_AVG:
			rc =
			    put_sum(c, m->kind == MEASURE_AVG, &sum, &avg, out);
			break;
		case MEASURE_MIN:
		case MEASURE_MAX:
			rc = rowfmt_put_field(
			    out, c->u.extreme.data, c->u.extreme.len,
			    csv_needs_quote(c->u.extreme.data,
					    c->u.extreme.len));
			break;
		}
	}
	buf_release(&sum);
	buf_release(&avg);
	return rc;
}
