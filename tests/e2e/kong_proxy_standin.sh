#!/bin/sh
# Build the PROXYING Kong stand-in image on a test host: `sh kong_proxy_standin.sh TAG PROGRAM`, PROGRAM
# being a copy of kong_proxy_standin.py on that host (root; needs busybox-static).
# The image holds this host's own python3 (its interpreter, its shared libraries, its standard
# library) and the program as /usr/local/bin/kong. What it mimics and what it does not: the
# program's docstring. It proves nothing about Kong's own behaviour.
set -eu
tag=$1
program=$2
work=$(mktemp -d)
python=$(readlink -f /usr/bin/python3)
version=$(basename "$python")
mkdir -p "$work/bin" "$work/usr/bin" "$work/usr/local/bin" "$work/tmp" "$work/usr/lib"
[ "${STANDIN_TREE_ONLY:-}" ] || cp /bin/busybox "$work/bin/busybox"
for tool in sh cat sleep ls; do ln -s busybox "$work/bin/$tool"; done
cp "$python" "$work/usr/bin/$version"
ln -s "$version" "$work/usr/bin/python3"
tar -C / --exclude="usr/lib/$version/test" --exclude="usr/lib/$version/site-packages" \
    --exclude="usr/lib/$version/dist-packages" --exclude="usr/lib/$version/idlelib" \
    --exclude="usr/lib/$version/tkinter" --exclude="usr/lib/$version/ensurepip" \
    -cf - "usr/lib/$version" | tar -C "$work" -xf -
# The shared libraries the interpreter and its extension modules load (no ld.so.cache in the image:
# glibc looks in its multiarch folders, where they are copied).
for library in $(ldd "$python" /usr/lib/"$version"/lib-dynload/*.so 2>/dev/null | grep -o '/[^ ]*\.so[^ :]*' | sort -u); do
    mkdir -p "$work$(dirname "$library")"
    cp -L "$library" "$work$library"
done
cp "$program" "$work/usr/local/bin/kong"
chmod 755 "$work/usr/local/bin/kong"
chmod 1777 "$work/tmp"
if [ "${STANDIN_TREE_ONLY:-}" ]; then echo "$work"; exit 0; fi
tar -C "$work" -cf "$work.tar" .
docker import --change 'CMD ["/usr/local/bin/kong", "docker-start"]' \
    --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' "$work.tar" "$tag" >/dev/null
rm -rf "$work" "$work.tar"
echo "built proxying stand-in $tag"
