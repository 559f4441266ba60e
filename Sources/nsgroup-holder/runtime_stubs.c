/* SwiftPM links every executable, even a C one, through swiftc, which adds
 * swiftrt.o: an object whose constructor registers the image with the Swift
 * runtime. The holder has no Swift code, and pulling in the runtime would
 * multiply its memory use (it links statically, see Package.swift). These two
 * no-op definitions satisfy swiftrt.o's references so that no part of the
 * Swift runtime is linked. If a toolchain adds a reference, the link fails
 * loudly; it cannot fail silently. */
#include <stdbool.h>

void swift_addNewDSOImage(const void *sections);
bool _swift_backtrace_isThunkFunction(const char *name);

void swift_addNewDSOImage(const void *sections) {
    (void)sections;
}

bool _swift_backtrace_isThunkFunction(const char *name) {
    (void)name;
    return false;
}
