/// A reference that is not retained: the one type through which the pipeline holds such
/// references. A retain and a release per packet or PDU (what a strong or `unowned` reference
/// costs at each use) is measurable on the per-packet path, so the stages reach their owner, their
/// delegate or their sink through this instead. Whoever stores one guarantees that the object
/// outlives it; the comment at each stored property says who owns the object.
struct Unretained<T: AnyObject> {
    private let ref: Unmanaged<T>

    @inline(__always) init(_ object: T) { ref = Unmanaged.passUnretained(object) }

    /// The object, retained by the caller for as long as it keeps it.
    @inline(__always) var object: T { ref.takeUnretainedValue() }

    /// Calls `body` with the object, neither retained nor released around the call.
    @inline(__always) func with<R>(_ body: (T) throws -> R) rethrows -> R { try ref._withUnsafeGuaranteedRef(body) }
}
