// The standard library's Array.withUnsafeBytes, withUnsafeMutableBytes and
// String.withUTF8 still rethrow a typed error as `any Error` (Swift 6.3;
// UnsafeRawBufferPointer.withMemoryRebound is typed already). These carry it
// out of the closure in a Result instead, so callers keep `throws(E)`; they are
// the one place that does.

extension Array where Element == UInt8 {
    /// `withUnsafeBytes` that keeps a typed error typed.
    @inlinable
    public func withBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        let result = withUnsafeBytes { raw -> Result<R, E> in
            do throws(E) { return .success(try body(raw)) } catch { return .failure(error) }
        }
        return try result.get()
    }

    /// `withUnsafeMutableBytes` that keeps a typed error typed.
    @inlinable
    public mutating func withMutableBytes<R, E: Error>(_ body: (UnsafeMutableRawBufferPointer) throws(E) -> R) throws(E) -> R {
        let result = withUnsafeMutableBytes { raw -> Result<R, E> in
            do throws(E) { return .success(try body(raw)) } catch { return .failure(error) }
        }
        return try result.get()
    }
}

extension String {
    /// `withUTF8` that keeps a typed error typed (the string is made contiguous first if need be).
    @inlinable
    public mutating func withUTF8Bytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        let result = withUTF8 { buffer -> Result<R, E> in
            do throws(E) { return .success(try body(UnsafeRawBufferPointer(buffer))) } catch { return .failure(error) }
        }
        return try result.get()
    }
}
