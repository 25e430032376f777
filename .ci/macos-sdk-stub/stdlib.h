/* Stands in for the Apple SDK header of the same name while .ci/macos-check
 * type-checks the crate for the Mac from Linux: ring (the crypto of the https health
 * probe) compiles C in its build script even for `cargo check`, and only these few
 * headers are not the compiler's own. Nothing compiled against them is ever linked. */
#include <stddef.h>
void abort(void);
