/*
 * Unit tests of fs/aead, whichever build of it meson chose: AES-256-GCM
 * against a published test vector, byte for byte against OpenSSL's EVP
 * (the reference) both ways and in place, and against every kind of
 * tampering.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "aead.h"
#include "keys.h"

static void hex(const char *s, uint8_t *out, size_t len)
{
	size_t i;

	assert_int_equal(strlen(s), 2 * len);
	for (i = 0; i < len; i++) {
		unsigned v;

		assert_int_equal(sscanf(s + 2 * i, "%2x", &v), 1);
		out[i] = (uint8_t)v;
	}
}

/* Test case 16 of McGrew and Viega, "The Galois/Counter Mode of
 * Operation": AES-256, 96-bit IV, 60-byte plaintext, 20-byte AAD. */
static void test_aead_known_answer(void **state)
{
	uint8_t key[KEY_LEN], nonce[AEAD_NONCE_LEN], aad[20];
	uint8_t plain[60], want_ct[60], want_tag[AEAD_TAG_LEN];
	uint8_t ct[60], tag[AEAD_TAG_LEN], back[60];

	(void)state;
	hex("feffe9928665731c6d6a8f9467308308"
	    "feffe9928665731c6d6a8f9467308308",
	    key, sizeof(key));
	hex("cafebabefacedbaddecaf888", nonce, sizeof(nonce));
	hex("feedfacedeadbeeffeedfacedeadbeefabaddad2", aad, sizeof(aad));
	hex("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
	    "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
	    plain, sizeof(plain));
	hex("522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
	    "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
	    want_ct, sizeof(want_ct));
	hex("76fc6ece0f4e1768cddf8853bb2d551b", want_tag, sizeof(want_tag));

	assert_int_equal(aead_seal(key, nonce, aad, sizeof(aad), plain,
				   sizeof(plain), ct, tag),
			 0);
	assert_memory_equal(ct, want_ct, sizeof(ct));
	assert_memory_equal(tag, want_tag, sizeof(tag));
	assert_int_equal(aead_open(key, nonce, aad, sizeof(aad), want_ct,
				   sizeof(want_ct), want_tag, back),
			 0);
	assert_memory_equal(back, plain, sizeof(plain));
}

static void test_aead_round_trip_lengths(void **state)
{
	static const size_t lens[] = {0, 1, 15, 16, 17, 1000, 70000};
	uint8_t key[KEY_LEN], nonce[AEAD_NONCE_LEN], tag[AEAD_TAG_LEN];
	uint8_t *plain = malloc(70000), *ct = malloc(70000 + 1),
		*back = malloc(70000 + 1);
	const char aad[] = "blk:file-id:0";
	size_t i, j;

	(void)state;
	assert_non_null(plain);
	assert_non_null(ct);
	assert_non_null(back);
	assert_int_equal(random_bytes(key, sizeof(key)), 0);
	assert_int_equal(random_bytes(nonce, sizeof(nonce)), 0);
	assert_int_equal(random_bytes(plain, 70000), 0);
	for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		for (j = 0; j < 2; j++) {
			size_t aad_len = j ? sizeof(aad) : 0;

			assert_int_equal(aead_seal(key, nonce, aad, aad_len,
						   plain, lens[i], ct, tag),
					 0);
			if (lens[i] >= 16)
				assert_memory_not_equal(ct, plain, lens[i]);
			assert_int_equal(aead_open(key, nonce, aad, aad_len, ct,
						   lens[i], tag, back),
					 0);
			if (lens[i])
				assert_memory_equal(back, plain, lens[i]);
		}
	}
	free(plain);
	free(ct);
	free(back);
}

static void test_aead_detects_tampering(void **state)
{
	uint8_t key[KEY_LEN], nonce[AEAD_NONCE_LEN], tag[AEAD_TAG_LEN];
	uint8_t plain[40], ct[40], back[41], t2[AEAD_TAG_LEN];
	uint8_t key2[KEY_LEN], nonce2[AEAD_NONCE_LEN];
	uint8_t aad[24], aad2[25];
	size_t i;

	(void)state;
	assert_int_equal(random_bytes(key, sizeof(key)), 0);
	assert_int_equal(random_bytes(nonce, sizeof(nonce)), 0);
	assert_int_equal(random_bytes(plain, sizeof(plain)), 0);
	assert_int_equal(random_bytes(aad, sizeof(aad)), 0);
	assert_int_equal(aead_seal(key, nonce, aad, sizeof(aad), plain,
				   sizeof(plain), ct, tag),
			 0);
	/* Every bit of the ciphertext. */
	for (i = 0; i < 8 * sizeof(ct); i++) {
		ct[i / 8] ^= (uint8_t)(1u << (i % 8));
		assert_int_equal(aead_open(key, nonce, aad, sizeof(aad), ct,
					   sizeof(ct), tag, back),
				 -EIO);
		ct[i / 8] ^= (uint8_t)(1u << (i % 8));
	}
	/* Every bit of the tag. */
	for (i = 0; i < 8 * AEAD_TAG_LEN; i++) {
		memcpy(t2, tag, sizeof(t2));
		t2[i / 8] ^= (uint8_t)(1u << (i % 8));
		assert_int_equal(aead_open(key, nonce, aad, sizeof(aad), ct,
					   sizeof(ct), t2, back),
				 -EIO);
	}
	/* Every byte of the AAD, and an AAD cut short, grown or left out. */
	for (i = 0; i < sizeof(aad); i++) {
		aad[i] ^= 0x01;
		assert_int_equal(aead_open(key, nonce, aad, sizeof(aad), ct,
					   sizeof(ct), tag, back),
				 -EIO);
		aad[i] ^= 0x01;
	}
	assert_int_equal(aead_open(key, nonce, aad, sizeof(aad) - 1, ct,
				   sizeof(ct), tag, back),
			 -EIO);
	memcpy(aad2, aad, sizeof(aad));
	aad2[sizeof(aad)] = 0;
	assert_int_equal(aead_open(key, nonce, aad2, sizeof(aad2), ct,
				   sizeof(ct), tag, back),
			 -EIO);
	assert_int_equal(
	    aead_open(key, nonce, NULL, 0, ct, sizeof(ct), tag, back), -EIO);
	/* A ciphertext cut short. */
	assert_int_equal(aead_open(key, nonce, aad, sizeof(aad), ct,
				   sizeof(ct) - 1, tag, back),
			 -EIO);
	/* Another nonce or key. */
	memcpy(nonce2, nonce, sizeof(nonce2));
	nonce2[AEAD_NONCE_LEN - 1] ^= 0x80;
	assert_int_equal(
	    aead_open(key, nonce2, aad, sizeof(aad), ct, sizeof(ct), tag, back),
	    -EIO);
	memcpy(key2, key, sizeof(key2));
	key2[0] ^= 0x01;
	assert_int_equal(
	    aead_open(key2, nonce, aad, sizeof(aad), ct, sizeof(ct), tag, back),
	    -EIO);
	/* Untouched, it still opens. */
	assert_int_equal(
	    aead_open(key, nonce, aad, sizeof(aad), ct, sizeof(ct), tag, back),
	    0);
	assert_memory_equal(back, plain, sizeof(plain));
}

/* An empty message still carries a tag that binds key, nonce and aad. */
static void test_aead_empty_message_is_authenticated(void **state)
{
	uint8_t key[KEY_LEN], nonce[AEAD_NONCE_LEN], tag[AEAD_TAG_LEN];
	uint8_t ct[1], back[1];
	const char aad[] = "idx";

	(void)state;
	assert_int_equal(random_bytes(key, sizeof(key)), 0);
	assert_int_equal(random_bytes(nonce, sizeof(nonce)), 0);
	assert_int_equal(aead_seal(key, nonce, aad, 3, ct, 0, ct, tag), 0);
	assert_int_equal(aead_open(key, nonce, aad, 3, ct, 0, tag, back), 0);
	assert_int_equal(aead_open(key, nonce, "idy", 3, ct, 0, tag, back),
			 -EIO);
	tag[5] ^= 0x10;
	assert_int_equal(aead_open(key, nonce, aad, 3, ct, 0, tag, back), -EIO);
}

/* OpenSSL's AES-256-GCM, the reference: seal (enc) or open in into out. */
static bool reference_gcm(bool enc, const uint8_t *key, const uint8_t *nonce,
			  const uint8_t *aad, size_t aad_len, const uint8_t *in,
			  size_t len, uint8_t *out, uint8_t tag[AEAD_TAG_LEN])
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int outl, ok;

	ok = ctx &&
	     EVP_CipherInit_ex2(ctx, EVP_aes_256_gcm(), key, nonce, enc, NULL);
	ok = ok && EVP_CipherUpdate(ctx, NULL, &outl, aad, (int)aad_len);
	ok = ok && (!len || EVP_CipherUpdate(ctx, out, &outl, in, (int)len));
	ok = ok && (enc || EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG,
					       AEAD_TAG_LEN, tag));
	ok = ok && EVP_CipherFinal_ex(ctx, out + len, &outl);
	ok = ok && (!enc || EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG,
						AEAD_TAG_LEN, tag));
	EVP_CIPHER_CTX_free(ctx);
	return ok;
}

/*
 * What aead_seal makes, OpenSSL opens, and the other way round, sealing
 * and opening in place as the store does: for lengths around every vector
 * width and a block's size, and aad lengths around one AES block.
 */
static void test_aead_agrees_with_openssl(void **state)
{
	static const size_t lens[] = {0,    1,	   15,	  16,	    17,
				      63,   64,	   255,	  256,	    257,
				      4095, 27001, 65536, 65536 + 7};
	static const size_t aad_lens[] = {0, 1, 15, 16, 17, 43};
	enum { MAX = 65536 + 7 };
	uint8_t key[KEY_LEN], nonce[AEAD_NONCE_LEN], aad[43];
	uint8_t tag[AEAD_TAG_LEN], ref_tag[AEAD_TAG_LEN];
	uint8_t *plain = malloc(MAX), *ct = malloc(MAX + 1),
		*ref = malloc(MAX + 1);
	size_t i, j;

	(void)state;
	assert_non_null(plain);
	assert_non_null(ct);
	assert_non_null(ref);
	assert_int_equal(random_bytes(aad, sizeof(aad)), 0);
	assert_int_equal(random_bytes(plain, MAX), 0);
	for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		for (j = 0; j < sizeof(aad_lens) / sizeof(aad_lens[0]); j++) {
			size_t n = lens[i], aad_len = aad_lens[j];

			assert_int_equal(random_bytes(key, sizeof(key)), 0);
			assert_int_equal(random_bytes(nonce, sizeof(nonce)), 0);
			assert_true(reference_gcm(true, key, nonce, aad,
						  aad_len, plain, n, ref,
						  ref_tag));
			/* Sealed apart, then in place: OpenSSL's bytes. */
			assert_int_equal(aead_seal(key, nonce, aad, aad_len,
						   plain, n, ct, tag),
					 0);
			assert_memory_equal(tag, ref_tag, AEAD_TAG_LEN);
			if (n)
				assert_memory_equal(ct, ref, n);
			memcpy(ct, plain, n);
			assert_int_equal(
			    aead_seal(key, nonce, aad, aad_len, ct, n, ct, tag),
			    0);
			assert_memory_equal(tag, ref_tag, AEAD_TAG_LEN);
			if (n)
				assert_memory_equal(ct, ref, n);
			/* OpenSSL opens ours; ours opens OpenSSL's. */
			assert_true(reference_gcm(false, key, nonce, aad,
						  aad_len, ct, n, ct, tag));
			if (n)
				assert_memory_equal(ct, plain, n);
			assert_int_equal(aead_open(key, nonce, aad, aad_len,
						   ref, n, ref_tag, ref),
					 0);
			if (n)
				assert_memory_equal(ref, plain, n);
		}
	}
	free(plain);
	free(ct);
	free(ref);
}

/* With nothing to seal or bind, the buffers may be NULL: a tag all the
 * same, OpenSSL's. */
static void test_aead_empty_buffers_may_be_null(void **state)
{
	uint8_t key[KEY_LEN], nonce[AEAD_NONCE_LEN], none[1];
	uint8_t tag[AEAD_TAG_LEN], ref_tag[AEAD_TAG_LEN];

	(void)state;
	assert_int_equal(random_bytes(key, sizeof(key)), 0);
	assert_int_equal(random_bytes(nonce, sizeof(nonce)), 0);
	assert_true(
	    reference_gcm(true, key, nonce, none, 0, none, 0, none, ref_tag));
	assert_int_equal(aead_seal(key, nonce, NULL, 0, NULL, 0, NULL, tag), 0);
	assert_memory_equal(tag, ref_tag, AEAD_TAG_LEN);
	assert_int_equal(aead_open(key, nonce, NULL, 0, NULL, 0, tag, NULL), 0);
	tag[0] ^= 1;
	assert_int_equal(aead_open(key, nonce, NULL, 0, NULL, 0, tag, NULL),
			 -EIO);
}

/*
 * A length past what one call may seal (GCM's 2^36 - 32 bytes under one
 * nonce; OpenSSL's int) is refused, not sealed in part.
 */
static void test_aead_refuses_overlong(void **state)
{
	uint8_t key[KEY_LEN] = {0}, nonce[AEAD_NONCE_LEN] = {0};
	uint8_t tag[AEAD_TAG_LEN] = {0}, buf[16] = {0};
	size_t huge = (size_t)1 << 36;

	(void)state;
	assert_int_equal(aead_seal(key, nonce, NULL, 0, buf, huge, buf, tag),
			 -EIO);
	assert_int_equal(aead_open(key, nonce, NULL, 0, buf, huge, tag, buf),
			 -EIO);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_aead_known_answer),
	    cmocka_unit_test(test_aead_agrees_with_openssl),
	    cmocka_unit_test(test_aead_empty_buffers_may_be_null),
	    cmocka_unit_test(test_aead_refuses_overlong),
	    cmocka_unit_test(test_aead_round_trip_lengths),
	    cmocka_unit_test(test_aead_detects_tampering),
	    cmocka_unit_test(test_aead_empty_message_is_authenticated),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
