#!/bin/sh
# System packages the project needs beside its Python ones: espeak-ng (the offline speech corpus
# of the speech task, when TIMIT is absent). Installs it with apt-get where it is missing and this
# user may (root, or sudo without a password); otherwise says what is missing. Never fails the set-up.
if command -v espeak-ng >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" = 0 ]; then
    run=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    run="sudo -n"
else
    echo "note: espeak-ng is not installed and cannot be installed here; the speech task needs it (or TIMIT)" >&2
    exit 0
fi
if command -v apt-get >/dev/null 2>&1; then
    $run apt-get install -y -q espeak-ng >/dev/null 2>&1 || { $run apt-get update -q >/dev/null 2>&1 && \
        $run apt-get install -y -q espeak-ng >/dev/null 2>&1; } || \
        echo "note: apt-get could not install espeak-ng; the speech task needs it (or TIMIT)" >&2
else
    echo "note: install espeak-ng with your package manager; the speech task needs it (or TIMIT)" >&2
fi
exit 0
