/*
 * gen-visits: writes a synthetic "health visits" CSV to stdout, the personal
 * data that govfs is built to govern, deterministically from a seed.
 *
 *   gen-visits [--rows N | --bytes B] [--seed S] [--with-bad KIND]
 *
 * (defaults: --rows 1000 --seed 1; N and B may end in K, M or G, binary).
 * The same arguments always give the same bytes.
 *
 * Columns: visit_id, patient_id (18-character resident ID number with a real
 * ISO 7064 MOD 11-2 check digit), name (Chinese, UTF-8), phone, district
 * (Hangzhou), age, visit_date, visit_time (+08:00), cost (2 decimals), notes
 * (free text: some empty, some quoted because they hold commas, double quotes
 * or a newline).  Patients repeat: rows draw from a pool of about N/5
 * patients, and one patient always has the same ID, name, phone and birth
 * date.  Nothing here is real data; any resemblance to a real person is
 * chance.
 *
 * --bytes B stops after the first row that brings the output to B bytes or
 * more.  --with-bad KIND writes one defect near the middle and prints its
 * physical line number to stderr as "bad line: N":
 *   ragged  a row with 9 fields (notes missing)
 *   utf8    a notes field holding an invalid UTF-8 sequence
 *   date    a visit_date of 2024-02-30
 *   quote   a notes field that opens a quote never closed: no later row
 *           holds a '"', so the rest of the file is inside that field (keep
 *           such files under 1 MiB, or a field-size limit fires first)
 *
 * Speed matters (it feeds benchmarks): rows are assembled from lookup tables
 * into a large buffer with no printf, and patients are derived on demand from
 * their index, so memory use does not grow with the output.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define OUT_BUF_SIZE (1u << 20)
/* No row comes near this; out_reserve() guarantees it before each row. */
#define ROW_MAX 1024

#define FIRST_YEAR 1926 /* first birth year: ages stay within 0..99 */
#define LAST_BIRTH_YEAR 2022
#define FIRST_VISIT_YEAR 2023
#define LAST_YEAR 2025
#define MAX_DAYS 36600 /* days in FIRST_YEAR..LAST_YEAR, rounded up */

struct text {
	const char *s;
	size_t len;
};

/* clang-format off */
#define TEXT(x) {x, sizeof(x) - 1}
/* clang-format on */

static const char *const district_names[] = {
    "Shangcheng", "Gongshu", "Xihu",	 "Binjiang", "Xiaoshan",
    "Yuhang",	  "Linping", "Qiantang", "Fuyang",   "Lin'an",
};
#define NDISTRICTS (sizeof(district_names) / sizeof(district_names[0]))

/*
 * Area codes (first six digits of the ID: where the holder was first
 * registered), with a weight and, for Hangzhou's districts, the district
 * people registered there most likely live in (-1: anywhere).  330103 and
 * 330104 are codes of districts since merged; old IDs keep them.
 */
struct area {
	char code[7];
	int weight;
	int district;
};

static const struct area areas[] = {
    {"330102", 10, 0}, {"330103", 4, 1},  {"330104", 4, 0},  {"330105", 8, 1},
    {"330106", 12, 2}, {"330108", 6, 3},  {"330109", 10, 4}, {"330110", 8, 5},
    {"330111", 6, 8},  {"330112", 4, 9},  {"330113", 4, 6},  {"330114", 4, 7},
    {"330122", 2, -1}, {"330127", 2, -1}, {"330182", 2, -1}, {"330203", 2, -1},
    {"330302", 2, -1}, {"330402", 2, -1}, {"330602", 2, -1}, {"330702", 2, -1},
    {"340104", 1, -1}, {"320106", 1, -1}, {"310104", 1, -1}, {"110105", 1, -1},
    {"360102", 1, -1}, {"410105", 1, -1}, {"430104", 1, -1}, {"510107", 1, -1},
    {"420106", 1, -1},
};
#define NAREAS (sizeof(areas) / sizeof(areas[0]))

/* Common single-character surnames, roughly by frequency (3 bytes each). */
static const char surnames[] =
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹"
    "彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金"
    "石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵"
    "万钱严覃武戴莫孔向汤";
#define NSURNAMES ((sizeof(surnames) - 1) / 3)

/* Two-character surnames (6 bytes each), used now and then. */
static const char compound_surnames[] = "欧阳司马诸葛上官东方慕容";
#define NCOMPOUND ((sizeof(compound_surnames) - 1) / 6)

/* Characters common in given names (3 bytes each). */
static const char given_chars[] =
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂英华玉萍红鹏辉建国"
    "文斌宇浩凯婷雪琳晨欣怡佳俊轩梓涵子睿博雨思嘉一诺悦瑶鑫波宁海燕"
    "秀云峰志刚晓丹慧颖倩晶亮成龙飞翔天佩琪家豪泽宏彬嘉怡昊然若曦";
#define NGIVEN ((sizeof(given_chars) - 1) / 3)

/* First three digits of Chinese mobile numbers. */
static const char phone_prefixes[][4] = {
    "130", "131", "132", "133", "134", "135", "136", "137", "138", "139", "147",
    "150", "151", "152", "153", "155", "156", "157", "158", "159", "166", "170",
    "173", "175", "176", "177", "178", "180", "181", "182", "183", "184", "185",
    "186", "187", "188", "189", "191", "193", "195", "196", "197", "198", "199",
};
#define NPREFIXES (sizeof(phone_prefixes) / sizeof(phone_prefixes[0]))

/* Short note phrases: none holds ',', '"', CR or LF (checked at start). */
static const struct text phrases[] = {
    TEXT("复诊"),
    TEXT("初诊"),
    TEXT("血压偏高"),
    TEXT("血糖正常"),
    TEXT("感冒发热"),
    TEXT("咳嗽三天"),
    TEXT("建议复查"),
    TEXT("开具处方"),
    TEXT("已预约下次就诊"),
    TEXT("过敏史：青霉素"),
    TEXT("术后复查"),
    TEXT("年度体检"),
    TEXT("慢性胃炎"),
    TEXT("腰痛"),
    TEXT("头痛伴恶心"),
    TEXT("儿童疫苗接种"),
    TEXT("孕检"),
    TEXT("视力下降"),
    TEXT("失眠"),
    TEXT("膝关节疼痛"),
    TEXT("高血压随访"),
    TEXT("糖尿病随访"),
    TEXT("发烧 38.5℃"),
    TEXT("换药"),
    TEXT("拆线"),
    TEXT("ECG 正常"),
    TEXT("CT 检查"),
    TEXT("MRI 已预约"),
    TEXT("skin rash"),
    TEXT("follow-up in 2 weeks"),
    TEXT("BP 138/88"),
    TEXT("HbA1c 6.1%"),
    TEXT("referred to cardiology"),
    TEXT("no known allergies"),
    TEXT("X-ray normal"),
    TEXT("prescribed amoxicillin 500mg"),
    TEXT("patient stable"),
    TEXT("flu shot"),
    TEXT("dental check"),
    TEXT("lab results pending"),
};
#define NPHRASES (sizeof(phrases) / sizeof(phrases[0]))

/* What patients say, quoted in notes. */
static const struct text sayings[] = {
    TEXT("头晕"),    TEXT("胸闷"), TEXT("睡不好"),	TEXT("好多了"),
    TEXT("no pain"), TEXT("OK"),   TEXT("feels tired"), TEXT("还是咳"),
};
#define NSAYINGS (sizeof(sayings) / sizeof(sayings[0]))

/* ISO 7064 MOD 11-2 weights for the 17 leading digits: 2^(17-i) mod 11. */
static const int id_weights[17] = {7, 9, 10, 5,	 8, 4, 2, 1, 6,
				   3, 7, 9,  10, 5, 8, 4, 2};
/* Check character for (weighted sum mod 11): (12 - sum) mod 11, 10 is X. */
static const char id_check_chars[11] = "10X98765432";

struct day {
	char iso[10]; /* YYYY-MM-DD, not NUL-terminated */
	uint16_t year;
	uint8_t month;
	uint8_t mday;
};

/* Every day from FIRST_YEAR-01-01 to LAST_YEAR-12-31. */
static struct day days[MAX_DAYS];
static uint32_t ndays;
static uint32_t nbirth_days; /* days[0..nbirth_days) are birth dates */
static uint32_t first_visit; /* days[first_visit..ndays) are visit dates */

static char two_digits[200];	    /* "00".."99" */
static uint8_t area_by_weight[128]; /* weighted area index lookup */
static unsigned narea_slots;

enum bad_kind {
	BAD_NONE,
	BAD_RAGGED,
	BAD_UTF8,
	BAD_DATE,
	BAD_QUOTE,
};

struct out {
	char *buf;
	size_t len;
	uint64_t total; /* bytes written so far, flushed or not */
};

/* The per-run constants of the patient pool. */
struct pool {
	uint64_t seed;
	uint64_t size;	/* patients 0..size-1 */
	uint64_t space; /* 1000 * nbirth_days: distinct (birth date, seq) */
	uint64_t mul;	/* coprime with space */
	uint64_t add;
};

/* splitmix64: a tiny, fast generator with good output mixing. */
static inline uint64_t rng_next(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* A uniform-enough value in [0, n) from the high 32 bits of r. */
static inline uint32_t pick(uint64_t r, uint32_t n)
{
	return (uint32_t)(((r >> 32) * (uint64_t)n) >> 32);
}

/* A second independent pick from the low 32 bits of r. */
static inline uint32_t pick_low(uint64_t r, uint32_t n)
{
	return (uint32_t)(((r & 0xffffffffull) * (uint64_t)n) >> 32);
}

static bool is_leap(unsigned y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Fill the day table and the small lookup tables. */
static void tables_init(void)
{
	static const uint8_t mdays[12] = {31, 28, 31, 30, 31, 30,
					  31, 31, 30, 31, 30, 31};
	unsigned y, m, d, i, j;

	for (i = 0; i < 100; i++) {
		two_digits[2 * i] = (char)('0' + i / 10);
		two_digits[2 * i + 1] = (char)('0' + i % 10);
	}
	ndays = 0;
	for (y = FIRST_YEAR; y <= LAST_YEAR; y++) {
		if (y == FIRST_VISIT_YEAR)
			first_visit = ndays;
		for (m = 1; m <= 12; m++) {
			unsigned len =
			    mdays[m - 1] + (m == 2 && is_leap(y) ? 1u : 0u);

			for (d = 1; d <= len; d++) {
				struct day *day = &days[ndays++];

				day->year = (uint16_t)y;
				day->month = (uint8_t)m;
				day->mday = (uint8_t)d;
				memcpy(day->iso, &two_digits[2 * (y / 100)], 2);
				memcpy(day->iso + 2, &two_digits[2 * (y % 100)],
				       2);
				day->iso[4] = '-';
				memcpy(day->iso + 5, &two_digits[2 * m], 2);
				day->iso[7] = '-';
				memcpy(day->iso + 8, &two_digits[2 * d], 2);
			}
		}
		if (y == LAST_BIRTH_YEAR)
			nbirth_days = ndays;
	}
	narea_slots = 0;
	for (i = 0; i < NAREAS; i++)
		for (j = 0; j < (unsigned)areas[i].weight; j++) {
			if (narea_slots == sizeof(area_by_weight))
				abort(); /* the weights outgrew the table */
			area_by_weight[narea_slots++] = (uint8_t)i;
		}
	for (i = 0; i < NPHRASES; i++)
		if (strpbrk(phrases[i].s, ",\"\r\n"))
			abort(); /* a phrase would need quoting */
}

static uint64_t gcd(uint64_t a, uint64_t b)
{
	while (b) {
		uint64_t t = a % b;

		a = b;
		b = t;
	}
	return a;
}

/*
 * Set up the pool of about rows/5 patients.  Patient k gets the pair (birth
 * date, 3-digit sequence) numbered (mul * k + add) mod space, a bijection,
 * so two patients never share an ID.
 */
static void pool_init(struct pool *pool, uint64_t seed, uint64_t rows)
{
	uint64_t state = seed ^ 0x5eed5eed5eed5eedull;

	pool->seed = rng_next(&state);
	pool->space = 1000ull * nbirth_days;
	pool->size = rows / 5;
	if (pool->size < 1)
		pool->size = 1;
	if (pool->size > pool->space)
		pool->size = pool->space;
	pool->mul = (uint64_t)((double)pool->space * 0.6180339887) | 1;
	while (gcd(pool->mul, pool->space) != 1)
		pool->mul += 2;
	pool->add = rng_next(&state) % pool->space;
}

static inline char *put_text(char *p, const struct text *t)
{
	memcpy(p, t->s, t->len);
	return p + t->len;
}

static inline char *put_str(char *p, const char *s)
{
	size_t len = strlen(s);

	memcpy(p, s, len);
	return p + len;
}

/* Write v in decimal; returns the end. */
static inline char *put_u64(char *p, uint64_t v)
{
	char tmp[20];
	size_t n = 0;

	while (v >= 100) {
		n += 2;
		memcpy(&tmp[sizeof(tmp) - n], &two_digits[2 * (v % 100)], 2);
		v /= 100;
	}
	if (v >= 10) {
		n += 2;
		memcpy(&tmp[sizeof(tmp) - n], &two_digits[2 * v], 2);
	} else {
		n += 1;
		tmp[sizeof(tmp) - n] = (char)('0' + v);
	}
	memcpy(p, &tmp[sizeof(tmp) - n], n);
	return p + n;
}

/* Write a digit string of exactly n digits drawn from r (n <= 19). */
static inline char *put_digits(char *p, uint64_t r, int n)
{
	for (int i = 0; i < n; i++) {
		p[i] = (char)('0' + r % 10);
		r /= 10;
	}
	return p + n;
}

/*
 * Write patient k's fields "patient_id,name,phone,district," (each a
 * function of k and the seed alone) and return the index of the birth date
 * in days[].
 */
static uint32_t put_patient(char **pp, const struct pool *pool, uint64_t k)
{
	uint64_t state = pool->seed ^ (k * 0xd1b54a32d192ed03ull);
	uint64_t j = (pool->mul * k + pool->add) % pool->space;
	uint32_t birth = (uint32_t)(j / 1000);
	unsigned seq = (unsigned)(j % 1000);
	const struct day *bd = &days[birth];
	const struct area *area;
	uint64_t r1 = rng_next(&state);
	uint64_t r2 = rng_next(&state);
	uint64_t r3 = rng_next(&state);
	uint64_t r4 = rng_next(&state);
	char *p = *pp;
	char *id = p;
	unsigned sum = 0;
	int district;

	area = &areas[area_by_weight[pick(r1, narea_slots)]];
	memcpy(p, area->code, 6);
	memcpy(p + 6, bd->iso, 4);
	memcpy(p + 10, bd->iso + 5, 2);
	memcpy(p + 12, bd->iso + 8, 2);
	p[14] = (char)('0' + seq / 100);
	memcpy(p + 15, &two_digits[2 * (seq % 100)], 2);
	for (int i = 0; i < 17; i++)
		sum += (unsigned)(id[i] - '0') * (unsigned)id_weights[i];
	p[17] = id_check_chars[sum % 11];
	p += 18;
	*p++ = ',';

	/* Name: surname skewed towards the common ones, then 1 or 2 chars. */
	if (pick_low(r1, 100) < 2) {
		memcpy(p, &compound_surnames[6 * pick(r2, NCOMPOUND)], 6);
		p += 6;
		memcpy(p, &given_chars[3 * pick_low(r2, NGIVEN)], 3);
		p += 3;
	} else {
		uint32_t a = pick(r2, NSURNAMES);
		uint32_t b = pick_low(r2, NSURNAMES);

		memcpy(p, &surnames[3 * (a * b / NSURNAMES)], 3);
		p += 3;
		memcpy(p, &given_chars[3 * pick(r3, NGIVEN)], 3);
		p += 3;
		if (pick(r4, 10) < 7) {
			memcpy(p, &given_chars[3 * pick_low(r3, NGIVEN)], 3);
			p += 3;
		}
	}
	*p++ = ',';

	r1 = rng_next(&state);
	memcpy(p, phone_prefixes[pick(r1, NPREFIXES)], 3);
	p = put_digits(p + 3, r1 & 0xffffffffull, 8);
	*p++ = ',';

	r2 = rng_next(&state);
	district = area->district;
	if (district < 0 || pick(r2, 10) >= 8)
		district = (int)pick_low(r2, NDISTRICTS);
	p = put_str(p, district_names[district]);
	*p++ = ',';

	*pp = p;
	return birth;
}

/* Write a notes field (without the comma before it); *lines counts LFs. */
static inline char *put_notes(char *p, uint64_t *state, bool plain_only,
			      unsigned *lines)
{
	uint64_t r = rng_next(state);
	uint64_t s = rng_next(state);
	uint32_t kind = pick(r, 1000);
	const struct text *a = &phrases[pick_low(r, NPHRASES)];
	const struct text *b = &phrases[pick(s, NPHRASES)];

	if (kind < 150)
		return p; /* NULL */
	if (plain_only)
		kind = 999;
	if (kind < 200) {
		*p++ = '"';
		p = put_text(p, a);
		*p++ = ',';
		*p++ = ' ';
		p = put_text(p, b);
		*p++ = '"';
	} else if (kind < 220) {
		*p++ = '"';
		p = put_text(p, a);
		memcpy(p, " 患者称\"\"", 12);
		p += 12;
		p = put_text(p, &sayings[pick_low(s, NSAYINGS)]);
		memcpy(p, "\"\"\"", 3);
		p += 3;
	} else if (kind < 230) {
		*p++ = '"';
		p = put_text(p, a);
		*p++ = '\n';
		p = put_text(p, b);
		*p++ = '"';
		(*lines)++;
	} else if (kind < 600) {
		p = put_text(p, a);
	} else if (kind < 800) {
		p = put_text(p, a);
		*p++ = ' ';
		p = put_text(p, b);
	} else {
		p = put_text(p, a);
		memcpy(p, "；", 3);
		p = put_text(p + 3, b);
	}
	return p;
}

/* Write out's buffer to stdout; 0 or -errno. */
static int out_flush(struct out *out)
{
	size_t done = 0;

	while (done < out->len) {
		ssize_t n =
		    write(STDOUT_FILENO, out->buf + done, out->len - done);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		done += (size_t)n;
	}
	out->len = 0;
	return 0;
}

/* Make room for one row; 0 or -errno. */
static inline int out_reserve(struct out *out)
{
	if (OUT_BUF_SIZE - out->len >= ROW_MAX)
		return 0;
	return out_flush(out);
}

/*
 * Write one row for visit_id id; bad is the defect to put in it.  Returns
 * the number of physical lines it took.
 */
static unsigned put_row(struct out *out, const struct pool *pool,
			uint64_t *state, uint64_t id, enum bad_kind bad,
			bool plain_only)
{
	char *start = out->buf + out->len;
	char *p = start;
	uint64_t r1 = rng_next(state);
	uint64_t r2 = rng_next(state);
	uint64_t r3 = rng_next(state);
	uint64_t r4 = rng_next(state);
	uint32_t visit = first_visit + pick(r2, ndays - first_visit);
	const struct day *vd = &days[visit];
	const struct day *bd;
	unsigned lines = 1;
	unsigned age;
	uint32_t hour, minute, second;
	uint64_t cents;
	uint32_t band;

	p = put_u64(p, id);
	*p++ = ',';
	bd = &days[put_patient(&p, pool, r1 % pool->size)];

	age = (unsigned)(vd->year - bd->year);
	if (vd->month < bd->month ||
	    (vd->month == bd->month && vd->mday < bd->mday))
		age--;
	p = put_u64(p, age);
	*p++ = ',';

	if (bad == BAD_DATE)
		memcpy(p, "2024-02-30", 10);
	else
		memcpy(p, vd->iso, 10);
	p += 10;
	*p++ = ',';

	hour = 8 + pick_low(r2, 10);
	minute = pick(r3, 60);
	second = pick_low(r3, 60);
	memcpy(p, vd->iso, 10);
	p[10] = 'T';
	memcpy(p + 11, &two_digits[2 * hour], 2);
	p[13] = ':';
	memcpy(p + 14, &two_digits[2 * minute], 2);
	p[16] = ':';
	memcpy(p + 17, &two_digits[2 * second], 2);
	memcpy(p + 19, "+08:00,", 7);
	p += 26;

	/* Cost: mostly small, sometimes large; two decimals always. */
	band = pick(r4, 100);
	if (band < 70)
		cents = 2000 + pick_low(r4, 48000);
	else if (band < 95)
		cents = 50000 + pick_low(r4, 250000);
	else
		cents = 300000 + pick_low(r4, 1700000);
	p = put_u64(p, cents / 100);
	*p++ = '.';
	memcpy(p, &two_digits[2 * (cents % 100)], 2);
	p += 2;

	switch (bad) {
	case BAD_RAGGED:
		break; /* the notes field and its comma are missing */
	case BAD_UTF8:
		memcpy(p, ",bad \xc3\x28 byte", 12);
		p += 12;
		break;
	case BAD_QUOTE:
		p = put_str(p, ",\"unterminated note");
		break;
	default:
		*p++ = ',';
		p = put_notes(p, state, plain_only || bad != BAD_NONE, &lines);
		break;
	}
	*p++ = '\n';

	out->len += (size_t)(p - start);
	out->total += (uint64_t)(p - start);
	return lines;
}

static const char header[] = "visit_id,patient_id,name,phone,district,age,"
			     "visit_date,visit_time,cost,notes\n";

static void usage(FILE *f)
{
	fputs("usage: gen-visits [--rows N | --bytes B] [--seed S] "
	      "[--with-bad ragged|utf8|date|quote]\n",
	      f);
}

/* Parse a count with an optional K, M or G (binary) suffix. */
static bool parse_count(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	int shift = 0;

	if (*s < '0' || *s > '9')
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return false;
	switch (*end) {
	case '\0':
		break;
	case 'k':
	case 'K':
		shift = 10;
		break;
	case 'm':
	case 'M':
		shift = 20;
		break;
	case 'g':
	case 'G':
		shift = 30;
		break;
	default:
		return false;
	}
	if (shift && end[1] != '\0')
		return false;
	if (v > (UINT64_MAX >> shift))
		return false;
	*out = (uint64_t)v << shift;
	return true;
}

int main(int argc, char **argv)
{
	uint64_t rows = 1000, bytes = 0, seed = 1, id, bad_at_row = 0;
	bool by_bytes = false, have_rows = false;
	enum bad_kind bad = BAD_NONE;
	struct out out = {0};
	struct pool pool;
	uint64_t state;
	uint64_t line = 2; /* physical line of the next row */
	bool bad_done = false;
	int rc;

	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];
		const char *val = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
			usage(stdout);
			return 0;
		}
		if (!val) {
			fprintf(stderr, "gen-visits: %s: missing value\n", arg);
			return 2;
		}
		i++;
		if (!strcmp(arg, "--rows") && parse_count(val, &rows)) {
			have_rows = true;
		} else if (!strcmp(arg, "--bytes") &&
			   parse_count(val, &bytes)) {
			by_bytes = true;
		} else if (!strcmp(arg, "--seed") && parse_count(val, &seed)) {
			continue;
		} else if (!strcmp(arg, "--with-bad")) {
			if (!strcmp(val, "ragged"))
				bad = BAD_RAGGED;
			else if (!strcmp(val, "utf8"))
				bad = BAD_UTF8;
			else if (!strcmp(val, "date"))
				bad = BAD_DATE;
			else if (!strcmp(val, "quote"))
				bad = BAD_QUOTE;
			else {
				fprintf(stderr,
					"gen-visits: --with-bad: unknown kind "
					"'%s'\n",
					val);
				return 2;
			}
		} else {
			fprintf(stderr, "gen-visits: %s %s: bad option\n", arg,
				val);
			usage(stderr);
			return 2;
		}
	}
	if (by_bytes && have_rows) {
		fputs("gen-visits: --rows and --bytes exclude each other\n",
		      stderr);
		return 2;
	}
	if (bad != BAD_NONE && !by_bytes && rows == 0) {
		fputs("gen-visits: --with-bad needs at least one row\n",
		      stderr);
		return 2;
	}

	/* A reader that stops early (| head) is not an error: see EPIPE. */
	signal(SIGPIPE, SIG_IGN);
	tables_init();
	/* About 120 bytes a row: the pool is sized from the expected rows. */
	pool_init(&pool, seed, by_bytes ? bytes / 120 : rows);
	state = seed;
	bad_at_row = rows / 2 + 1;

	out.buf = malloc(OUT_BUF_SIZE);
	if (!out.buf) {
		fputs("gen-visits: out of memory\n", stderr);
		return 1;
	}
	memcpy(out.buf, header, sizeof(header) - 1);
	out.len = out.total = sizeof(header) - 1;

	for (id = 1;; id++) {
		enum bad_kind this_bad = BAD_NONE;

		if (by_bytes) {
			if (out.total >= bytes && (bad == BAD_NONE || bad_done))
				break;
			if (bad != BAD_NONE && !bad_done &&
			    out.total >= bytes / 2)
				this_bad = bad;
		} else {
			if (id > rows)
				break;
			if (bad != BAD_NONE && id == bad_at_row)
				this_bad = bad;
		}
		rc = out_reserve(&out);
		if (rc < 0)
			goto out_write_error;
		if (this_bad != BAD_NONE) {
			bad_done = true;
			fprintf(stderr, "bad line: %" PRIu64 "\n", line);
		}
		line += put_row(&out, &pool, &state, id, this_bad,
				bad == BAD_QUOTE && bad_done);
	}
	rc = out_flush(&out);
	if (rc < 0)
		goto out_write_error;
	free(out.buf);
	return 0;

out_write_error:
	free(out.buf);
	if (rc == -EPIPE)
		return 0; /* the reader has seen enough */
	fprintf(stderr, "gen-visits: stdout: %s\n", strerror(-rc));
	return 1;
}
