/* The header on its own, as strict C99: every type and prototype must be well-formed. */
#include "shivya.h"

int main(void) {
    shivya_route r = {0, 1, 1.0};
    shivya_snapshot s;
    (void)s;
    return (int)r.src + (shivya_abi_version() == SHIVYA_ABI_VERSION ? 0 : 1);
}
