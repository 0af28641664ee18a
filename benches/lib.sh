# Shell functions the side-by-side bench scripts share; source it.
#
#   bench_file DIR NAME MIB     DIR/NAME: MIB MiB of incompressible bytes
#                               (an AES-CTR keystream), made once and kept
#   bench_measure RES NAME CMD...
#                               run CMD once; append "seconds max_rss_kib"
#                               to RES/NAME (the wall time from bash's clock,
#                               in ns; GNU time's own is rounded to 10 ms)
#   bench_median                the median of the numbers on stdin

bench_file() {
    local path=$1/$2 bytes=$(( $3 * 1024 * 1024 ))
    [ -f "$path" ] && [ "$(stat -c %s "$path")" -eq "$bytes" ] && return
    { openssl enc -aes-128-ctr -nosalt -pass "pass:custos-$2" -in /dev/zero 2>/dev/null || true; } \
        | head -c "$bytes" > "$path"
}

bench_measure() {
    local res=$1 name=$2 start end; shift 2
    start=$(date +%s.%N)
    /usr/bin/time -f '%M' -o "$res/.last" "$@" > /dev/null
    end=$(date +%s.%N)
    echo "$(echo "$end - $start" | bc -l) $(cat "$res/.last")" >> "$res/$name"
}

bench_median() {
    sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'
}
