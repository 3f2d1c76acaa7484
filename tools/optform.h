/*
 * optform: how one argument gives a long option, "--name VALUE" or
 * "--name=VALUE", for the options govfsctl and its front read by hand
 * (those before the verb, and the front's suspend and revoke).
 */
#ifndef GOVFS_OPTFORM_H
#define GOVFS_OPTFORM_H

/* Not at all, "--name" (its value next, if it takes one), "--name=VALUE". */
enum option_form { NOT_THIS_OPTION, VALUE_NEXT, VALUE_JOINED };

/* How arg gives option name ("--home"), spelt in full; with VALUE_JOINED,
 * *value points at what follows the '='. */
enum option_form option_form(const char *arg, const char *name,
			     const char **value);

#endif
