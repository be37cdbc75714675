// pgelect::ErrorKind names and the error class hierarchy.
#include <gtest/gtest.h>

#include <set>
#include <stdexcept>
#include <string>

#include "pgelect/errors.hpp"

namespace {

using pgelect::ErrorKind;

TEST(ErrorKind, ToStringNamesEveryKind) {
    EXPECT_EQ(pgelect::to_string(ErrorKind::not_acquired), "not_acquired");
    EXPECT_EQ(pgelect::to_string(ErrorKind::already_released), "already_released");
    EXPECT_EQ(pgelect::to_string(ErrorKind::not_found), "not_found");
    EXPECT_EQ(pgelect::to_string(ErrorKind::unavailable), "unavailable");
    EXPECT_EQ(pgelect::to_string(ErrorKind::failed_precondition), "failed_precondition");
    EXPECT_EQ(pgelect::to_string(ErrorKind::serialization), "serialization");
    EXPECT_EQ(pgelect::to_string(ErrorKind::invalid_argument), "invalid_argument");
    EXPECT_EQ(pgelect::to_string(ErrorKind::leadership_lost), "leadership_lost");
    EXPECT_EQ(pgelect::to_string(ErrorKind::other), "other");
}

TEST(ErrorKind, ToStringOfAnOutOfRangeValueIsOther) {
    EXPECT_EQ(pgelect::to_string(static_cast<ErrorKind>(1000)), "other");
}

template <class E>
void expect_kind(ErrorKind kind) {
    SCOPED_TRACE(std::string(pgelect::to_string(kind)));
    E e("message for " + std::string(pgelect::to_string(kind)));
    EXPECT_EQ(e.kind(), kind);
    EXPECT_EQ(std::string(e.what()), "message for " + std::string(pgelect::to_string(kind)));
    // Catchable as the base classes.
    try {
        throw E("x");
    } catch (const pgelect::Error& base) {
        EXPECT_EQ(base.kind(), kind);
    }
    try {
        throw E("y");
    } catch (const std::runtime_error& base) {
        EXPECT_STREQ(base.what(), "y");
    }
}

TEST(Errors, SubclassesCarryTheirKind) {
    expect_kind<pgelect::NotAcquiredError>(ErrorKind::not_acquired);
    expect_kind<pgelect::AlreadyReleasedError>(ErrorKind::already_released);
    expect_kind<pgelect::NotFoundError>(ErrorKind::not_found);
    expect_kind<pgelect::UnavailableError>(ErrorKind::unavailable);
    expect_kind<pgelect::FailedPreconditionError>(ErrorKind::failed_precondition);
    expect_kind<pgelect::SerializationError>(ErrorKind::serialization);
    expect_kind<pgelect::InvalidArgumentError>(ErrorKind::invalid_argument);
    expect_kind<pgelect::LeadershipLostError>(ErrorKind::leadership_lost);
}

TEST(Errors, BaseErrorKeepsAnyKind) {
    pgelect::Error e(ErrorKind::other, "boom");
    EXPECT_EQ(e.kind(), ErrorKind::other);
    EXPECT_STREQ(e.what(), "boom");
    pgelect::Error u(ErrorKind::unavailable, "down");
    EXPECT_EQ(u.kind(), ErrorKind::unavailable);
}

TEST(Errors, SubclassesAreDistinctTypes) {
    // Catching one subclass must not catch another.
    bool caught_right = false;
    try {
        try {
            throw pgelect::NotFoundError("n");
        } catch (const pgelect::NotAcquiredError&) {
            ADD_FAILURE() << "NotFoundError caught as NotAcquiredError";
        }
    } catch (const pgelect::NotFoundError&) {
        caught_right = true;
    }
    EXPECT_TRUE(caught_right);
}

TEST(ErrorKind, NamesAreDistinct) {
    std::set<std::string> names;
    for (int k = 0; k <= static_cast<int>(ErrorKind::other); ++k) {
        names.insert(std::string(pgelect::to_string(static_cast<ErrorKind>(k))));
    }
    EXPECT_EQ(names.size(), static_cast<std::size_t>(ErrorKind::other) + 1);
}

}  // namespace
