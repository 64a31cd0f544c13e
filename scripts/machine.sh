# Sourced by the bench scripts: the machine a benchmark ran on, as markdown list items.
# Usage: machine_lines [NOTE]   (NOTE is appended to the CPU line)
machine_lines() {
    local note=${1:+ $1}
    echo "- CPU: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')$note"
    echo "- memory: $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
    echo "- kernel: $(uname -sr)"
}
