/*
 * banned.h - functions that are too easy to misuse.  Included last by every
 * .c file, after the system headers, so a call to one of these is a
 * compile error that names the function.
 */
#ifndef MC_BANNED_H
#define MC_BANNED_H

#define MC_BANNED(func) sorry_##func##_is_banned_use_a_bounded_alternative

#undef strcpy
#define strcpy(x, y) MC_BANNED(strcpy)
#undef strcat
#define strcat(x, y) MC_BANNED(strcat)
#undef strncpy
#define strncpy(x, y, n) MC_BANNED(strncpy)
#undef strncat
#define strncat(x, y, n) MC_BANNED(strncat)
#undef sprintf
#define sprintf(...) MC_BANNED(sprintf)
#undef vsprintf
#define vsprintf(...) MC_BANNED(vsprintf)
#undef strtok
#define strtok(x, y) MC_BANNED(strtok)
#undef gets
#define gets(x) MC_BANNED(gets)
#undef atoi
#define atoi(x) MC_BANNED(atoi)
#undef atol
#define atol(x) MC_BANNED(atol)

#endif
