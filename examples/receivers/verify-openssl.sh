#!/bin/sh
# Checks X-Blue-Signature with openssl: the body on stdin, the secret and the header as arguments.
#
#   ./verify-openssl.sh "$SECRET" "$X_BLUE_SIGNATURE" < body.json && echo valid
#
# The one-liner inside: printf the hex HMAC-SHA256 of the exact body bytes, keyed with the secret.
[ "$(openssl dgst -sha256 -hmac "$1" | sed 's/^.*= *//')" = "$2" ]
